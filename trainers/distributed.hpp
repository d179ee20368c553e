// Data-parallel training over MPI (docs/DISTRIBUTED.md): N processes ("ranks"), each with the
// whole model and the whole dataset in memory, each computing the gradient of its shard of every
// global batch; the gradients are summed with MPI allreduce in buckets, and every rank applies
// the same optimizer step, so the weights stay identical on every rank.
//
//   mpirun -np 4 onnxforge train configs/baseline.toml     # 4 ranks, global batch 32 (8 each)
//   onnxforge train configs/baseline.toml                  # one process: no MPI at all
//
// A process started without an MPI launcher (no OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in
// its environment) never initialises MPI and is rank 0 of 1. A build without MPI
// (-DONNXFORGE_WITH_MPI=OFF, or not found) refuses to run under a launcher with more than one
// rank rather than train N independent copies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "trainers/batches.hpp"

namespace onnxforge::train {

// This process's place in the job.
struct Shard {
  int rank = 0;
  int ranks = 1;
};

// The rows [begin, begin + count) of `total` that `rank` of `ranks` takes: contiguous, the first
// total % ranks ranks one row more than the others.
struct ShardRange {
  std::size_t begin = 0;
  std::size_t count = 0;
};
ShardRange shard_range(std::size_t total, const Shard& shard);

class Communicator {
 public:
  // The job's communicator: initialises MPI on first use when a launcher started this process.
  static Communicator& world();

  Shard shard() const { return {rank_, size_}; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }

  // Collectives over every rank (no-ops on one rank). Each throws Error naming `what` and the MPI
  // error when a peer is gone (the communicator returns errors instead of aborting).
  void sum(std::span<double> values, const std::string& what);
  void broadcast(std::span<std::uint8_t> bytes, const std::string& what);
  void broadcast(std::string& text, const std::string& what);  // any length, from rank 0
  // Every rank's values, concatenated in rank order, on every rank.
  std::vector<double> allgather(std::span<const double> local, const std::string& what);
  // Fills rows [begin_r, begin_r + count_r) of `rows` (row_size floats each) on every rank from
  // rank r, where begin/count are shard_range(total rows, r).
  void allgather_rows(float* rows, std::size_t total_rows, std::size_t row_size,
                      const std::string& what);
  void barrier(const std::string& what);

  // Ends the whole job at once (MPI_Abort) after printing `message` (one line) on stderr.
  [[noreturn]] void abort(const std::string& message, int code = 1);

  // Non-blocking sum of floats in place (a gradient bucket); wait() completes it.
  struct Request {
    void* handle = nullptr;  // an MPI_Request, owned
  };
  Request start_sum(std::span<float> values, const std::string& what);
  bool test(Request& request, const std::string& what);  // drives progress; true when done
  void wait(Request& request, const std::string& what);

  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

 private:
  Communicator();
  int rank_ = 0;
  int size_ = 1;
  bool initialised_ = false;  // we called MPI_Init and must finalise
  void* comm_ = nullptr;      // an MPI_Comm (a duplicate of MPI_COMM_WORLD with ERRORS_RETURN)
};

// Whether this build has MPI (ONNXFORGE_WITH_MPI).
bool built_with_mpi();

// Compiles `graph` so that every rank computes alike: with Precision::automatic across several
// ranks, rank 0 compiles (measuring its layers) and keeps that Program, and the others compile
// with its per-layer choices (CompileOptions::layer_precision); otherwise a plain compile.
std::unique_ptr<Program> compile_alike(Communicator& comm, Backend& backend, const Graph& graph,
                                       CompileOptions options, const std::string& what);

// Compute threads for this rank when the config says 0 ("all cores"): the cores this process
// is bound to, or the machine's cores divided among the ranks on this node.
int default_rank_threads();

// Sums the gradients of every trainable parameter over the ranks, each rank's gradient weighted
// by `weight` (its shard's share of the global batch, so that the sum is the gradient of the
// mean loss over the global batch), in buckets of at most `bucket_bytes` of f32: each bucket's
// MPI_Iallreduce starts as soon as its gradients are copied out of the Program, so copying the
// next gradients overlaps with the communication of the previous buckets; results are written
// back with set_gradient as each bucket completes. `extra` (step statistics: loss sums, correct
// counts) is summed alongside, in double precision.
class GradientAllreduce {
 public:
  GradientAllreduce(Communicator& comm, const Graph& graph,
                    std::size_t bucket_bytes = std::size_t{25} << 20);
  void run(Program& program, double weight, std::span<double> extra);

  std::size_t buckets() const { return buckets_.size(); }
  std::size_t parameters() const { return floats_; }        // trainable floats reduced per step
  double seconds_waiting() const { return wait_seconds_; }  // total time blocked in wait()

 private:
  struct Bucket {
    std::vector<std::string> names;
    std::vector<std::size_t> offsets;
    std::vector<float> values;
  };
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::size_t floats_ = 0;
  double wait_seconds_ = 0.0;
};

// What this rank prints (one line on stderr) if a signal ends it (SIGTERM, SIGINT, SIGHUP): when
// one rank fails, the launcher terminates the others, and each says where training was and how
// to continue. The loop updates it every step; the handler is installed on first use, and only
// in a job of several ranks.
void set_last_words(const std::string& line);

// Test-only fault injection: ONNXFORGE_TEST_FAIL="RANK:STEP:HOW" makes rank RANK die at global
// training step STEP (counted from 1 over the whole run, epochs included) by HOW = kill
// (SIGKILL), abort (std::abort) or throw (an Error). Does nothing when the variable is unset.
void maybe_inject_failure(int rank, std::int64_t global_step);

// A source of this rank's shard of every batch of `inner`-like data. Training: each epoch's
// order is data::epoch_order(n, seed, epoch) (the same as one process's), cut into global
// batches of `batch_size` (the last partial one dropped), and this rank yields its
// shard_range(batch_size) rows of each; evaluation: this rank's contiguous slice
// shard_range(n) of the samples, in order, in batches of `batch_size` (here: the local batch).
// size(), labels() and paths() describe the whole split.
struct ShardedOptions {
  Shard shard;
  int batch_size = 32;  // global batch (training) or local batch (evaluation)
  bool training = true;
  std::uint64_t seed = 42;
};
std::unique_ptr<BatchSource> sharded_image_batches(const data::ImageCache& cache,
                                                   const data::BatchOptions& options,
                                                   const ShardedOptions& sharded);
std::unique_ptr<BatchSource> sharded_feature_batches(const FeatureCache& cache,
                                                     const ShardedOptions& sharded);

}  // namespace onnxforge::train
