#include "trainers/distributed.hpp"

#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <tbb/task_arena.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <limits>
#include <thread>

#include "core/error.hpp"

#ifdef ONNXFORGE_HAVE_MPI
#include <mpi.h>
#endif

namespace onnxforge::train {

namespace {

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}

// Whether an MPI launcher (mpirun/mpiexec of Open MPI, srun --mpi=pmix or pmi2, hydra) started
// this process, and with how many ranks (0 when it does not say before MPI_Init).
bool launched_by_mpi(int* ranks) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const char* value = env(name)) {
      *ranks = std::atoi(value);
      return true;
    }
  }
  *ranks = 0;
  return env("PMIX_RANK") || env("PMI_RANK");
}

// srun without an MPI plugin starts N copies that know nothing of each other: each would train
// alone and write the same run folder.
void refuse_unconnected_srun() {
  const char* tasks = env("SLURM_STEP_NUM_TASKS");
  if (tasks && std::atoi(tasks) > 1) {
    fail(
        "started by srun as one of {} tasks without MPI: use `srun --mpi=pmix` (or pmi2), or "
        "mpirun inside the allocation (docs/DISTRIBUTED.md)",
        tasks);
  }
}

}  // namespace

ShardRange shard_range(std::size_t total, const Shard& shard) {
  const auto ranks = static_cast<std::size_t>(shard.ranks);
  const auto rank = static_cast<std::size_t>(shard.rank);
  const std::size_t base = total / ranks;
  const std::size_t extra = total % ranks;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

bool built_with_mpi() {
#ifdef ONNXFORGE_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Program> compile_alike(Communicator& comm, Backend& backend, const Graph& graph,
                                       CompileOptions options, const std::string& what) {
  if (!comm.distributed() || options.precision != Precision::automatic) {
    return backend.compile(graph, options);
  }
  std::unique_ptr<Program> program;
  std::string choices;
  if (comm.root()) {
    program = backend.compile(graph, options);
    for (const auto& c : program->layer_choices()) choices += c.node + "=" + c.dtype + "\n";
  }
  comm.broadcast(choices, "the per-layer precisions of " + what);
  if (program) return program;
  std::size_t start = 0;
  while (start < choices.size()) {
    const std::size_t end = choices.find('\n', start);
    const std::string line = choices.substr(start, end - start);
    const auto eq = line.rfind('=');
    options.layer_precision[line.substr(0, eq)] = parse_precision(line.substr(eq + 1));
    start = end + 1;
  }
  return backend.compile(graph, options);
}

int default_rank_threads() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  int bound = cores;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) bound = std::max(1, CPU_COUNT(&set));
  if (bound < cores) return bound;  // the launcher bound this rank to some cores: use them
  int local = 1;
  for (const char* name :
       {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    if (const char* value = env(name)) {
      local = std::max(1, std::atoi(value));
      break;
    }
  }
  return std::max(1, cores / local);
}

// ---- Communicator -------------------------------------------------------------------------------

#ifdef ONNXFORGE_HAVE_MPI

namespace {

MPI_Comm as_comm(void* comm) { return *static_cast<MPI_Comm*>(comm); }

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<std::size_t>(length));
}

[[noreturn]] void communication_failed(const std::string& what, int code) {
  fail(
      "{} failed ({}): another rank has probably died or lost its connection; the job stops "
      "(continue it from the last checkpoint with --resume, with any number of ranks)",
      what, mpi_error(code));
}

int checked_count(std::size_t count, const std::string& what) {
  if (count > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail("{}: {} values exceed one MPI message ({} at most)", what, count,
         std::numeric_limits<int>::max());
  }
  return static_cast<int>(count);
}

}  // namespace

Communicator::Communicator() {
  int ranks = 0;
  if (!launched_by_mpi(&ranks)) {
    refuse_unconnected_srun();
    return;
  }
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    int provided = 0;
    // Only the training thread calls MPI (the data loader's threads never do).
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      fail("MPI_Init failed: this process was started by an MPI launcher that did not work");
    }
    initialised_ = true;
  }
  auto* comm = new MPI_Comm;
  MPI_Comm_dup(MPI_COMM_WORLD, comm);
  // Errors come back as return codes (turned into one clear Error line), never a silent abort.
  MPI_Comm_set_errhandler(*comm, MPI_ERRORS_RETURN);
  comm_ = comm;
  MPI_Comm_rank(*comm, &rank_);
  MPI_Comm_size(*comm, &size_);
}

Communicator::~Communicator() {
  if (comm_) {
    MPI_Comm_free(static_cast<MPI_Comm*>(comm_));
    delete static_cast<MPI_Comm*>(comm_);
  }
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (initialised_ && !finalized) MPI_Finalize();
}

void Communicator::sum(std::span<double> values, const std::string& what) {
  if (!distributed() || values.empty()) return;
  const int rc = MPI_Allreduce(MPI_IN_PLACE, values.data(), checked_count(values.size(), what),
                               MPI_DOUBLE, MPI_SUM, as_comm(comm_));
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
}

void Communicator::broadcast(std::span<std::uint8_t> bytes, const std::string& what) {
  if (!distributed()) return;
  // In pieces of at most 1 GiB (MPI counts are int).
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    const std::size_t n = std::min(piece, bytes.size() - at);
    const int rc = MPI_Bcast(bytes.data() + at, static_cast<int>(n), MPI_BYTE, 0, as_comm(comm_));
    if (rc != MPI_SUCCESS) communication_failed(what, rc);
  }
}

void Communicator::broadcast(std::string& text, const std::string& what) {
  if (!distributed()) return;
  std::uint64_t size = text.size();
  broadcast(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&size), sizeof size), what);
  text.resize(size);
  broadcast(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(text.data()), text.size()),
            what);
}

std::vector<double> Communicator::allgather(std::span<const double> local,
                                            const std::string& what) {
  if (!distributed()) return {local.begin(), local.end()};
  std::vector<int> counts(static_cast<std::size_t>(size_));
  int mine = checked_count(local.size(), what);
  int rc = MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, as_comm(comm_));
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
  std::vector<int> displacements(counts.size(), 0);
  std::size_t total = 0;
  for (std::size_t r = 0; r < counts.size(); ++r) {
    displacements[r] = checked_count(total, what);
    total += static_cast<std::size_t>(counts[r]);
  }
  std::vector<double> out(total);
  rc = MPI_Allgatherv(local.data(), mine, MPI_DOUBLE, out.data(), counts.data(),
                      displacements.data(), MPI_DOUBLE, as_comm(comm_));
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
  return out;
}

void Communicator::allgather_rows(float* rows, std::size_t total_rows, std::size_t row_size,
                                  const std::string& what) {
  if (!distributed()) return;
  // One row is one element of a contiguous datatype, so counts stay small.
  MPI_Datatype row;
  MPI_Type_contiguous(checked_count(row_size, what), MPI_FLOAT, &row);
  MPI_Type_commit(&row);
  std::vector<int> counts, displacements;
  for (int r = 0; r < size_; ++r) {
    const ShardRange range = shard_range(total_rows, {r, size_});
    counts.push_back(checked_count(range.count, what));
    displacements.push_back(checked_count(range.begin, what));
  }
  const int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, rows, counts.data(),
                                displacements.data(), row, as_comm(comm_));
  MPI_Type_free(&row);
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
}

void Communicator::barrier(const std::string& what) {
  if (!distributed()) return;
  const int rc = MPI_Barrier(as_comm(comm_));
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
}

void Communicator::abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  if (comm_) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

Communicator::Request Communicator::start_sum(std::span<float> values, const std::string& what) {
  Request request;
  if (!distributed()) return request;
  auto* handle = new MPI_Request;
  const int rc = MPI_Iallreduce(MPI_IN_PLACE, values.data(), checked_count(values.size(), what),
                                MPI_FLOAT, MPI_SUM, as_comm(comm_), handle);
  if (rc != MPI_SUCCESS) {
    delete handle;
    communication_failed(what, rc);
  }
  request.handle = handle;
  return request;
}

bool Communicator::test(Request& request, const std::string& what) {
  if (!request.handle) return true;
  int done = 0;
  const int rc = MPI_Test(static_cast<MPI_Request*>(request.handle), &done, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
  if (done) {
    delete static_cast<MPI_Request*>(request.handle);
    request.handle = nullptr;
  }
  return done != 0;
}

void Communicator::wait(Request& request, const std::string& what) {
  if (!request.handle) return;
  auto* handle = static_cast<MPI_Request*>(request.handle);
  const int rc = MPI_Wait(handle, MPI_STATUS_IGNORE);
  delete handle;
  request.handle = nullptr;
  if (rc != MPI_SUCCESS) communication_failed(what, rc);
}

#else  // no MPI in this build

Communicator::Communicator() {
  int ranks = 0;
  if (!launched_by_mpi(&ranks)) refuse_unconnected_srun();
  if (launched_by_mpi(&ranks) && ranks > 1) {
    fail(
        "this onnxforge was built without MPI (-DONNXFORGE_WITH_MPI=OFF or MPI not found) but "
        "was started as one of {} MPI ranks: rebuild with libopenmpi-dev installed, or run one "
        "process without mpirun",
        ranks);
  }
}
Communicator::~Communicator() = default;
void Communicator::sum(std::span<double>, const std::string&) {}
void Communicator::broadcast(std::span<std::uint8_t>, const std::string&) {}
void Communicator::broadcast(std::string&, const std::string&) {}
std::vector<double> Communicator::allgather(std::span<const double> local, const std::string&) {
  return {local.begin(), local.end()};
}
void Communicator::allgather_rows(float*, std::size_t, std::size_t, const std::string&) {}
void Communicator::barrier(const std::string&) {}
void Communicator::abort(const std::string& message, int code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}
Communicator::Request Communicator::start_sum(std::span<float>, const std::string&) { return {}; }
bool Communicator::test(Request&, const std::string&) { return true; }
void Communicator::wait(Request&, const std::string&) {}

#endif

Communicator& Communicator::world() {
  static Communicator instance;
  return instance;
}

// ---- gradient allreduce -------------------------------------------------------------------------

GradientAllreduce::GradientAllreduce(Communicator& comm, const Graph& graph,
                                     std::size_t bucket_bytes)
    : comm_(comm) {
  const std::size_t cap = std::max<std::size_t>(1, bucket_bytes / sizeof(float));
  // Last layers first: the order a layer-by-layer backward would finish them in.
  for (auto it = graph.initializers.rbegin(); it != graph.initializers.rend(); ++it) {
    if (!it->trainable || !is_floating(it->value.dtype())) continue;
    const auto n = static_cast<std::size_t>(element_count(it->value.shape()));
    if (buckets_.empty() ||
        (!buckets_.back().names.empty() && buckets_.back().values.size() + n > cap)) {
      buckets_.emplace_back();
    }
    Bucket& b = buckets_.back();
    b.names.push_back(it->name);
    b.offsets.push_back(b.values.size());
    b.values.resize(b.values.size() + n);
    floats_ += n;
  }
}

void GradientAllreduce::run(Program& program, double weight, std::span<double> extra) {
  using Clock = std::chrono::steady_clock;
  // The step statistics first: tiny, exact (double), and every rank needs them to decide alike.
  comm_.sum(extra, "the allreduce of the step's loss");
  std::vector<Communicator::Request> requests(buckets_.size());
  std::vector<std::vector<Tensor>> gradients(buckets_.size());
  const std::string what = "the gradient allreduce";
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    for (std::size_t i = 0; i < bucket.names.size(); ++i) {
      Tensor g = program.gradient(bucket.names[i]);
      const auto values = g.data<float>();
      float* out = bucket.values.data() + bucket.offsets[i];
      const auto w = static_cast<float>(weight);
      for (std::size_t k = 0; k < values.size(); ++k) out[k] = values[k] * w;
      gradients[b].push_back(std::move(g));
      // Let the buckets already started progress while this one fills (Open MPI's non-blocking
      // collectives advance inside MPI calls).
      for (std::size_t p = 0; p < b; ++p) comm_.test(requests[p], what);
    }
    requests[b] = comm_.start_sum(bucket.values, what);
  }
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    const auto start = Clock::now();
    comm_.wait(requests[b], what);
    wait_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    Bucket& bucket = buckets_[b];
    for (std::size_t i = 0; i < bucket.names.size(); ++i) {
      Tensor& g = gradients[b][i];
      auto values = g.data<float>();
      std::memcpy(values.data(), bucket.values.data() + bucket.offsets[i],
                  values.size() * sizeof(float));
      program.set_gradient(bucket.names[i], g);
    }
  }
}

// ---- last words ---------------------------------------------------------------------------------

namespace {

// Two buffers so that the handler never reads one being written.
char last_words[2][1024];
std::atomic<int> last_words_current{-1};
std::atomic<std::size_t> last_words_length[2];

extern "C" void say_last_words(int signal) {
  const int current = last_words_current.load();
  if (current >= 0) {
    const std::size_t length = last_words_length[current].load();
    const ssize_t written = ::write(2, last_words[current], length);
    (void)written;
  }
  ::_exit(128 + signal);
}

}  // namespace

void set_last_words(const std::string& line) {
  static const bool installed = [] {
    if (!Communicator::world().distributed()) return false;
    struct sigaction action {};
    action.sa_handler = say_last_words;
    sigemptyset(&action.sa_mask);
    for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaction(signal, &action, nullptr);
    return true;
  }();
  if (!installed) return;
  const int next = last_words_current.load() == 0 ? 1 : 0;
  const std::size_t length = std::min(line.size(), sizeof last_words[next] - 2);
  std::memcpy(last_words[next], line.data(), length);
  last_words[next][length] = '\n';
  last_words_length[next].store(length + 1);
  last_words_current.store(next);
}

// ---- fault injection (tests) -------------------------------------------------------------------

void maybe_inject_failure(int rank, std::int64_t global_step) {
  static const char* spec = env("ONNXFORGE_TEST_FAIL");
  if (!spec) return;
  int fail_rank = -1;
  long long fail_step = -1;
  char how[16] = {};
  if (std::sscanf(spec, "%d:%lld:%15s", &fail_rank, &fail_step, how) != 3) {
    fail("ONNXFORGE_TEST_FAIL='{}' is not RANK:STEP:kill|abort|throw", spec);
  }
  if (fail_rank != rank || fail_step != global_step) return;
  std::fprintf(stderr, "rank %d: ONNXFORGE_TEST_FAIL: dying (%s) at step %lld\n", rank, how,
               fail_step);
  std::fflush(stderr);
  if (std::strcmp(how, "kill") == 0) std::raise(SIGKILL);
  if (std::strcmp(how, "abort") == 0) std::abort();
  fail("rank {}: ONNXFORGE_TEST_FAIL: an injected error at step {}", rank, global_step);
}

// ---- sharded sources ----------------------------------------------------------------------------

namespace {

// Plans which samples this rank reads in each batch; subclasses fill the rows.
class ShardedSource : public BatchSource {
 public:
  ShardedSource(std::size_t samples, const ShardedOptions& options)
      : samples_(samples), options_(options) {
    if (options.batch_size <= 0) fail("batch size {} must be positive", options.batch_size);
  }

  void start_epoch(int epoch) override {
    drain();
    epoch_ = epoch;
    batches_.clear();
    const auto bs = static_cast<std::size_t>(options_.batch_size);
    if (options_.training) {
      const auto order = data::epoch_order(samples_, options_.seed, epoch, true);
      const ShardRange mine = shard_range(bs, options_.shard);
      for (std::size_t b = 0; b + bs <= order.size(); b += bs) {
        batches_.emplace_back(
            order.begin() + static_cast<std::ptrdiff_t>(b + mine.begin),
            order.begin() + static_cast<std::ptrdiff_t>(b + mine.begin + mine.count));
      }
    } else {
      const ShardRange mine = shard_range(samples_, options_.shard);
      for (std::size_t b = 0; b < mine.count; b += bs) {
        std::vector<std::size_t> batch;
        for (std::size_t i = b; i < std::min(mine.count, b + bs); ++i) {
          batch.push_back(mine.begin + i);
        }
        batches_.push_back(std::move(batch));
      }
    }
    next_ = 0;
    started_ = true;
    prefetch();
  }

  int next(Tensor& inputs, Tensor& labels) override {
    if (!started_) start_epoch(0);
    if (next_ >= batches_.size()) return 0;
    const auto& indices = batches_[next_];
    collect(indices, inputs, labels);
    ++next_;
    prefetch();
    return static_cast<int>(indices.size());
  }

  std::size_t batches_per_epoch() const override {
    const auto bs = static_cast<std::size_t>(options_.batch_size);
    if (options_.training) return samples_ / bs;
    const std::size_t mine = shard_range(samples_, options_.shard).count;
    return (mine + bs - 1) / bs;
  }
  std::size_t size() const override { return samples_; }

 protected:
  // Starts preparing batches_[next_] (when there is one); collect() returns it; drain() waits
  // for a preparation in flight.
  virtual void prefetch() {}
  virtual void drain() {}
  virtual void collect(const std::vector<std::size_t>& indices, Tensor& inputs, Tensor& labels) = 0;

  std::size_t samples_;
  ShardedOptions options_;
  int epoch_ = 0;
  std::vector<std::vector<std::size_t>> batches_;
  std::size_t next_ = 0;
  bool started_ = false;
};

class ShardedImages final : public ShardedSource {
 public:
  ShardedImages(const data::ImageCache& cache, const data::BatchOptions& options,
                const ShardedOptions& sharded)
      : ShardedSource(cache.size(), sharded),
        cache_(cache),
        batch_options_(options),
        arena_(std::max(1, options.threads)) {
    labels_ = cache.labels;
    if (!sharded.training) {
      batch_options_.mode = data::Mode::evaluate;
      batch_options_.augment = data::Augment{};
    }
  }
  ~ShardedImages() override { drain(); }
  const std::vector<int>& labels() const override { return labels_; }
  const std::vector<std::filesystem::path>& paths() const override { return cache_.paths; }

 protected:
  void drain() override {
    if (pending_.valid()) pending_.wait();
    pending_ = {};
  }
  void prefetch() override {
    drain();
    if (next_ >= batches_.size()) return;
    const std::vector<std::size_t>* indices = &batches_[next_];
    const int epoch = epoch_;
    pending_ = std::async(std::launch::async, [this, indices, epoch] {
      arena_.execute([&] { data::fill_batch(cache_, *indices, batch_options_, epoch, prepared_); });
    });
  }
  void collect(const std::vector<std::size_t>&, Tensor& inputs, Tensor& labels) override {
    pending_.get();  // rethrows a failure of the preparation
    copy_rows(prepared_.images, inputs);
    copy_rows(prepared_.labels, labels);
  }

 private:
  static void copy_rows(const std::vector<float>& src, Tensor& dst) {
    auto out = dst.data<float>();
    if (src.size() > out.size())
      fail("a batch of {} values does not fit {}", src.size(), out.size());
    std::copy(src.begin(), src.end(), out.begin());
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(src.size()), out.end(), 0.0f);
  }

  const data::ImageCache& cache_;
  data::BatchOptions batch_options_;
  tbb::task_arena arena_;
  data::Batch prepared_;
  std::future<void> pending_;
  std::vector<int> labels_;
};

class ShardedFeatures final : public ShardedSource {
 public:
  ShardedFeatures(const FeatureCache& cache, const ShardedOptions& sharded)
      : ShardedSource(cache.count(), sharded), cache_(cache) {}
  const std::vector<int>& labels() const override { return cache_.labels; }
  const std::vector<std::filesystem::path>& paths() const override { return cache_.paths; }

 protected:
  void collect(const std::vector<std::size_t>& indices, Tensor& inputs, Tensor& labels) override {
    auto in = inputs.data<float>();
    auto out = labels.data<float>();
    if (indices.size() * cache_.sample_size() > in.size()) {
      fail("a batch of {} features does not fit {}", indices.size(), in.size());
    }
    std::fill(in.begin(), in.end(), 0.0f);
    std::fill(out.begin(), out.end(), 0.0f);
    for (std::size_t i = 0; i < indices.size(); ++i) {
      std::memcpy(in.data() + i * cache_.sample_size(), cache_.sample(indices[i]),
                  cache_.sample_size() * sizeof(float));
      out[i] = static_cast<float>(cache_.labels[indices[i]]);
    }
  }

 private:
  const FeatureCache& cache_;
};

}  // namespace

std::unique_ptr<BatchSource> sharded_image_batches(const data::ImageCache& cache,
                                                   const data::BatchOptions& options,
                                                   const ShardedOptions& sharded) {
  return std::make_unique<ShardedImages>(cache, options, sharded);
}

std::unique_ptr<BatchSource> sharded_feature_batches(const FeatureCache& cache,
                                                     const ShardedOptions& sharded) {
  return std::make_unique<ShardedFeatures>(cache, sharded);
}

}  // namespace onnxforge::train
