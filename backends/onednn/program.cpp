// The oneDNN Program: compile-time planning (values, layout views, gradient accumulation) and the
// run-time entry points. The op lowerings live in lower.cpp and lower/<family>.cpp.
#include "backends/onednn/program.hpp"

#include <omp.h>
#include <sys/mman.h>
#include <xmmintrin.h>

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"
#include "graph/builder.hpp"
#include "graph/ops.hpp"

namespace onnxforge::onednn {

namespace {

// Buffers from this size up are placed by the memory plan (smaller ones cost little and are
// many: biases, batch statistics, scalars).
constexpr std::size_t kPlannedBytes = std::size_t{1} << 16;
constexpr std::size_t kArenaAlignment = 4096;
// Guard bytes (ONNXFORGE_GUARD_BYTES=1): a page before each guarded buffer, and its slack plus a
// page after it, hold this pattern.
constexpr std::size_t kGuardBytes = kArenaAlignment;
constexpr unsigned char kGuardPattern = 0xA5;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Anonymous pages: zero, and resident only once touched.
char* map_pages(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("onednn backend: cannot map {} bytes of memory", bytes);
  return static_cast<char*>(p);
}

// A layout without padding: its bytes are exactly its elements.
bool dense(const Desc& md) {
  std::size_t elements = 1;
  for (auto d : md.dims()) elements *= static_cast<std::size_t>(d);
  return elements * memory::data_type_size(md.data_type()) == md.get_size();
}

const char* plan_name(Plan plan) {
  switch (plan) {
    case Plan::inference:
      return "inference";
    case Plan::training:
      return "training";
    case Plan::backward:
      return "backward";
  }
  return "?";
}

}  // namespace

memory::dims dims_of(const Shape& shape) {
  if (shape.empty()) return {1};
  return memory::dims(shape.begin(), shape.end());
}

Desc plain_desc(const Shape& shape, DataType type) {
  const memory::dims dims = dims_of(shape);
  memory::dims strides(dims.size(), 1);
  for (std::size_t i = dims.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * dims[i];
  return Desc(dims, type, strides);
}

OnednnProgram::OnednnProgram(const Graph& graph, const CompileOptions& options)
    : ProgramBase(graph, options, "onednn"), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
  threads_ = options.threads > 0 ? options.threads : omp_get_num_procs();
  const ComputeScope scope = prepare_threads();
  dropout_seed_ = hash_name("dropout", options.seed);

  for (const auto& [name, info] : graph_.values) {
    Value& v = values_[name];
    v.name = name;
    v.shape = info.shape;
    v.dtype = info.dtype;
  }

  if (options_.training) {
    const std::vector<std::string> roots = backward_roots();
    needs_grad_ = values_needing_gradient(graph_, roots, options_.input_gradients);
    for (const auto& root : roots) {
      if (needs_grad_.count(root)) value(root).seedable = true;
    }
  }

  for (const auto& in : graph_.inputs) {
    Value& v = value(in.name);
    if (v.dtype == DType::i64) {
      v.ints.assign(static_cast<std::size_t>(element_count(v.shape)), 0);
      v.defined = true;
    } else {
      define(in.name, plain_desc(v.shape));
    }
  }
  for (const auto& init : graph_.initializers) {
    Value& v = value(init.name);
    v.parameter = true;
    v.trainable = init.trainable;
    if (init.value.dtype() == DType::i64) {
      const auto data = init.value.data<std::int64_t>();
      v.ints.assign(data.begin(), data.end());
      v.defined = true;
      continue;
    }
    define(init.name, plain_desc(v.shape));
    write_plain(v, v.mem, init.value);
    if (init.trainable && options_.training) v.grad = allocate(v.md);
  }
  plan_fusion();
  if (options_.training) {
    lower(Plan::training);
    for (auto it = backward_builders_.rbegin(); it != backward_builders_.rend(); ++it) (*it)();
    backward_builders_.clear();
    // Seedable roots must have a gradient buffer even when no node contributes to them.
    for (const auto& name : needs_grad_) {
      Value& v = value(name);
      if (v.seedable && !v.grad && v.defined && !v.fused_away) v.grad = allocate(v.md);
    }
  }
  lower(Plan::inference);
  const char* guard = std::getenv("ONNXFORGE_GUARD_BYTES");
  guard_bytes_ = guard && std::string(guard) != "0" && std::string(guard) != "";
  plan_memory();
}

OnednnProgram::~OnednnProgram() {
  for (const auto& b : buffers_) {
    if (!b.placed) ::munmap(b.data, b.size);
  }
  if (arena_) ::munmap(arena_, memory_plan_.arena);
}

// ---- compile-time planning ---------------------------------------------------------------------

namespace {
// Precision::automatic takes bf16 for a layer when it measures at most this fraction of f32.
constexpr double kBf16Gain = 0.9;
}  // namespace

DataType OnednnProgram::compute_type(const Node& node,
                                     const std::function<double(DataType)>& measure) {
  auto it = precision_.find(node.name);
  if (it != precision_.end()) return it->second.first;
  DataType type = DataType::f32;
  std::string why;
  auto fixed = options_.layer_precision.find(node.name);
  const Precision precision =
      fixed == options_.layer_precision.end() ? options_.precision : fixed->second;
  switch (precision) {
    case Precision::f32:
      why = fixed != options_.layer_precision.end() ? "given per layer" : "--dtype fp32";
      break;
    case Precision::bf16:
      type = DataType::bf16;
      why = fixed != options_.layer_precision.end() ? "given per layer" : "--dtype bf16";
      break;
    case Precision::automatic:
      if (node.is(OpId::Dense) && options_.training) {
        // bf16 inputs of the dense layers delay the escape from the initial plateau of the
        // default backbone pretraining (a deep VGG16 without batch norm): measured in
        // docs/BENCHMARKS.md, one seed of four stayed at ln 2 for its whole epoch. No primitive is
        // wrong (tests/backends/mixed_precision_test.cpp), and a dense layer's share of a
        // training step is small, so auto trains them in f32 (--dtype bf16 still runs them in
        // bf16).
        why = "auto: dense layers train in fp32 (bf16 slowed learning: docs/BENCHMARKS.md)";
        break;
      }
      if (!cpu_has_native_bf16()) {
        why = fmt::format("auto: no native bf16 on this CPU ({})", isa_name());
        break;
      }
      const double f32 = measure(DataType::f32);
      const double bf16 = measure(DataType::bf16);
      // bf16 only where it clearly pays: within 10% the timing noise of a busy machine decides
      // (a 3-channel first convolution measured 0.81 against 0.78 ms), so two runs of one config
      // would round different sets of layers and train differently, for a gain within that
      // noise.
      type = bf16 < kBf16Gain * f32 ? DataType::bf16 : DataType::f32;
      why = fmt::format("auto, measured: fp32 {:.3f} ms, bf16 {:.3f} ms", f32 * 1e3, bf16 * 1e3);
      break;
  }
  precision_[node.name] = {type, why};
  return type;
}

void OnednnProgram::record_choice(const Node& node, DataType type,
                                  const std::string& implementation, const std::string& why) {
  for (const auto& c : choices_) {
    if (c.node == node.name) return;
  }
  auto it = precision_.find(node.name);
  choices_.push_back({node.name, node.op, type == DataType::bf16 ? "bf16" : "fp32", implementation,
                      why.empty() && it != precision_.end() ? it->second.second : why});
}

Value& OnednnProgram::value(const std::string& name) { return value_in(values_, name); }

const Value& OnednnProgram::value(const std::string& name) const { return value_in(values_, name); }

memory OnednnProgram::allocate(const Desc& md) {
  const std::size_t size = md.get_size();
  if (size < kPlannedBytes || !dense(md)) {
    memory_plan_.small += size;
    memory mem(md, engine_);
    std::memset(mem.get_data_handle(), 0, size);
    return mem;
  }
  Buffer b;
  b.used = size;
  b.size = round_up(size, kArenaAlignment);
  b.data = map_pages(b.size);
  buffers_.push_back(b);
  return memory(md, engine_, b.data);
}

memory ScratchMemories::make(const Desc& md) {
  const std::size_t size = round_up(std::max<std::size_t>(md.get_size(), 1), kArenaAlignment);
  char* data = map_pages(size);
  pages_.emplace_back(data, size);
  return memory(md, engine_, data);
}

ScratchMemories::~ScratchMemories() {
  for (const auto& [data, size] : pages_) ::munmap(data, size);
}

OnednnProgram::Buffer* OnednnProgram::buffer_of(const void* handle) {
  const char* h = static_cast<const char*>(handle);
  for (auto& b : buffers_) {
    if (h >= b.data && h < b.data + b.size) return &b;
  }
  return nullptr;
}

void OnednnProgram::pin(const memory& mem) {
  if (!mem) return;
  if (Buffer* b = buffer_of(mem.get_data_handle())) b->pinned = true;
}

void OnednnProgram::plan_memory() {
  // What lives across plan runs keeps its own bytes.
  auto pin_value = [&](const std::string& name) {
    const Value& v = value(name);
    pin(v.mem);
    pin(v.grad);
    for (const auto& view : v.views) pin(view.mem);
  };
  for (const auto& in : graph_.inputs) pin_value(in.name);
  for (const auto& init : graph_.initializers) pin_value(init.name);
  for (const auto& out : graph_.outputs) pin_value(out);
  for (const auto& kept : options_.keep) pin_value(kept);
  if (!options_.loss.empty() && values_.count(options_.loss)) pin_value(options_.loss);
  for (const auto& [name, v] : values_) {
    if (v.seedable || v.parameter) pin_value(name);
  }
  for (const auto& step : weight_steps_) {
    for (const auto& m : step.touches) pin(m);
  }

  // Live ranges: one over the inference plan, one over the training plan then backward (a run
  // of either sees its buffers live within its range, and what one plan leaves for another is
  // pinned), so two buffers whose ranges overlap in neither may share bytes.
  std::int64_t position = 0;
  for (int plan = 0; plan < kPlanCount; ++plan) {
    const int run = plan == static_cast<int>(Plan::inference) ? 0 : 1;
    for (const auto& step : plans_[plan]) {
      for (const auto& m : step.touches) {
        if (!m) continue;
        Buffer* b = buffer_of(m.get_data_handle());
        if (!b) continue;
        if (b->first[run] < 0) b->first[run] = position;
        b->last[run] = position;
      }
      ++position;
    }
  }
  auto touched = [](const Buffer& b) { return b.first[0] >= 0 || b.first[1] >= 0; };
  auto overlap = [](const Buffer& a, const Buffer& b) {
    for (int run = 0; run < 2; ++run) {
      if (a.first[run] >= 0 && b.first[run] >= 0 && a.first[run] <= b.last[run] &&
          b.first[run] <= a.last[run]) {
        return true;
      }
    }
    return false;
  };

  std::vector<Buffer*> order;
  for (auto& b : buffers_) {
    if (b.pinned || !touched(b)) {
      memory_plan_.pinned += b.size;
    } else {
      memory_plan_.planned += b.size;
      order.push_back(&b);
    }
  }
  // Largest first, each at the lowest offset free of the placed buffers it overlaps in time.
  std::stable_sort(order.begin(), order.end(),
                   [](const Buffer* a, const Buffer* b) { return a->size > b->size; });
  std::vector<const Buffer*> placed;
  if (guard_bytes_) {
    // Debug: no sharing, a guard page on each side (the slack after `used` is guarded too).
    std::size_t offset = 0;
    for (Buffer* b : order) {
      b->offset = offset + kGuardBytes;
      offset = b->offset + b->size + kGuardBytes;
      placed.push_back(b);
      guarded_.push_back(b);
    }
    memory_plan_.arena = offset;
  }
  for (Buffer* b : guard_bytes_ ? std::vector<Buffer*>{} : order) {
    std::vector<std::pair<std::size_t, std::size_t>> taken;
    for (const Buffer* o : placed) {
      if (overlap(*o, *b)) taken.emplace_back(o->offset, o->size);
    }
    std::sort(taken.begin(), taken.end());
    std::size_t offset = 0;
    for (const auto& [start, size] : taken) {
      if (offset + b->size <= start) break;
      offset = std::max(offset, start + size);
    }
    b->offset = offset;
    memory_plan_.arena = std::max(memory_plan_.arena, offset + b->size);
    placed.push_back(b);
  }
  if (placed.empty()) return;
  arena_ = map_pages(memory_plan_.arena);
  for (const Buffer* b : guarded_) {
    std::memset(arena_ + b->offset - kGuardBytes, kGuardPattern, kGuardBytes);
    std::memset(arena_ + b->offset + b->used, kGuardPattern, b->size - b->used + kGuardBytes);
  }

  // Every memory object the steps touch that lies in a placed buffer moves with it (objects are
  // shared handles: the copies inside steps and values move together).
  std::vector<std::pair<memory, char*>> moves;
  std::set<dnnl_memory_t> seen;
  for (auto& plan : plans_) {
    for (const auto& step : plan) {
      for (const auto& m : step.touches) {
        if (!m || !seen.insert(m.get()).second) continue;
        char* h = static_cast<char*>(m.get_data_handle());
        Buffer* b = buffer_of(h);
        if (!b || b->pinned || !touched(*b)) continue;
        moves.emplace_back(m, arena_ + b->offset + (h - b->data));
      }
    }
  }
  for (auto& [m, to] : moves) m.set_data_handle(to);
  for (Buffer* b : order) {
    ::munmap(b->data, b->size);
    b->placed = true;
  }
}

memory& OnednnProgram::define(const std::string& name, const Desc& md) {
  Value& v = value(name);
  if (v.defined) {
    if (!(v.md == md)) {
      fail("onednn backend (internal): value '{}' got two different layouts", name);
    }
    return v.mem;
  }
  v.md = md;
  v.mem = allocate(md);
  v.defined = true;
  return v.mem;
}

memory& OnednnProgram::define_alias(const std::string& name, const Desc& md, void* handle) {
  Value& v = value(name);
  if (v.defined) return v.mem;
  v.md = md;
  v.mem = memory(md, engine_, handle);
  v.defined = true;
  return v.mem;
}

Desc OnednnProgram::output_desc(const std::string& name, DataType type) {
  Value& v = value(name);
  if (v.defined) return v.md;
  return Desc(dims_of(v.shape), type, Tag::any);
}

void OnednnProgram::add(Plan plan, std::string label, std::vector<memory> touches,
                        std::function<void()> run) {
  plans_[static_cast<int>(plan)].push_back({std::move(label), std::move(run), std::move(touches)});
}

void OnednnProgram::add_primitive(Plan plan, std::string label, dnnl::primitive primitive,
                                  std::unordered_map<int, memory> args) {
  std::vector<memory> touches;
  for (const auto& [arg, mem] : args) touches.push_back(mem);
  add(plan, std::move(label), std::move(touches),
      [this, primitive, args]() { primitive.execute(stream_, args); });
}

memory OnednnProgram::use(const std::string& name, const Desc& md, Plan plan,
                          const std::optional<Desc>& as) {
  Value& v = value(name);
  if (!v.defined) fail("onednn backend (internal): '{}' is used before it is defined", name);
  if (v.fused_away) fail("onednn backend (internal): '{}' was fused away", name);
  const Desc source_md = as ? *as : v.md;
  memory source = as ? memory(*as, engine_, v.mem.get_data_handle()) : v.mem;
  if (md == source_md) return source;
  const int p = static_cast<int>(plan);
  for (auto& view : v.views) {
    if (!(view.md == md)) continue;
    if (v.parameter) return view.mem;
    if (view.produced[p]) return view.mem;
    if (plan == Plan::backward && view.produced[static_cast<int>(Plan::training)]) {
      return view.mem;
    }
    view.produced[p] = true;
    dnnl::reorder reorder(source, view.mem);
    add_primitive(plan, fmt::format("{}: reorder to another layout", name), reorder,
                  {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, view.mem}});
    return view.mem;
  }
  View view;
  view.md = md;
  view.mem = allocate(md);
  if (v.parameter) {
    add_weight_reorder(fmt::format("{}: reorder weights", name), source, view.mem);
  } else {
    view.produced[p] = true;
    add_primitive(plan, fmt::format("{}: reorder to another layout", name),
                  dnnl::reorder(source, view.mem),
                  {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, view.mem}});
  }
  v.views.push_back(view);
  return v.views.back().mem;
}

memory OnednnProgram::weight_reorder(const memory& source, const Desc& md,
                                     const std::string& label) {
  memory to = allocate(md);
  add_weight_reorder(label, source, to);
  return to;
}

void OnednnProgram::add_weight_reorder(const std::string& label, const memory& from,
                                       const memory& to) {
  dnnl::reorder reorder(from, to);
  weight_steps_.push_back({label,
                           [this, reorder, from, to]() {
                             reorder.execute(stream_, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
                           },
                           {from, to}});
}

memory OnednnProgram::convert(const memory& src, const Desc& md, Plan plan,
                              const std::string& label) {
  if (src.get_desc() == md) return src;
  // In backward, a gradient is complete before its first reader and never written after, so a
  // second reader asking for the same layout (a convolution's backward data and weights both
  // take diff_dst) shares the first one's copy.
  if (plan == Plan::backward) {
    for (const auto& c : backward_converts_) {
      if (c.source.get_data_handle() == src.get_data_handle() &&
          c.source.get_desc() == src.get_desc() && c.mem.get_desc() == md) {
        return c.mem;
      }
    }
  }
  memory dst = allocate(md);
  dnnl::reorder reorder(src, dst);
  add_primitive(plan, label + ": reorder", reorder, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
  if (plan == Plan::backward) backward_converts_.push_back({src, dst});
  return dst;
}

memory OnednnProgram::gradient_in(const std::string& name, const Desc& md) {
  Value& v = value(name);
  if (!v.grad) v.grad = allocate(v.md);
  // No contribution was planned (backward builders run consumers first): the gradient stays the
  // zeros it was allocated with, so its bytes must stay its own.
  if (!v.grad_claimed && !v.seedable) pin(v.grad);
  return convert(v.grad, md, Plan::backward, "d" + name);
}

GradSink OnednnProgram::gradient_sink(const std::string& name, const Desc& md,
                                      const std::optional<Desc>& as) {
  Value& v = value(name);
  if (!v.grad) v.grad = allocate(v.md);
  const bool accumulate = v.seedable || v.grad_claimed;
  v.grad_claimed = true;
  const Desc target_md = as ? *as : v.md;
  memory target = as ? memory(*as, engine_, v.grad.get_data_handle()) : v.grad;
  GradSink sink;
  sink.value = name;
  if (!accumulate && md == target_md) {
    sink.mem = target;
    return sink;
  }
  Scratch* scratch = nullptr;
  for (auto& s : scratch_) {
    if (!s.busy && s.md == md) scratch = &s;
  }
  if (!scratch) {
    scratch_.push_back({md, allocate(md), false});
    scratch = &scratch_.back();
  }
  scratch->busy = true;
  sink.mem = scratch->mem;
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.f);
    attr.set_post_ops(ops);
  }
  dnnl::reorder reorder(dnnl::reorder::primitive_desc(sink.mem, target, attr));
  memory from = sink.mem;
  sink.finish = Step{fmt::format("d{}: {} contribution", name, accumulate ? "add" : "copy"),
                     [this, reorder, from, target]() {
                       reorder.execute(stream_, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, target}});
                     },
                     {from, target}};
  return sink;
}

void OnednnProgram::finish(GradSink& sink) {
  if (sink.finish) {
    plans_[static_cast<int>(Plan::backward)].push_back(std::move(*sink.finish));
    sink.finish.reset();
    for (auto& s : scratch_) {
      if (s.mem.get_data_handle() == sink.mem.get_data_handle()) s.busy = false;
    }
  }
}

void OnednnProgram::contribute(const std::string& name, const memory& src,
                               const std::string& label) {
  Value& v = value(name);
  if (!v.grad) v.grad = allocate(v.md);
  const bool accumulate = v.seedable || v.grad_claimed;
  v.grad_claimed = true;
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.f);
    attr.set_post_ops(ops);
  }
  memory target = v.grad;
  dnnl::reorder reorder(dnnl::reorder::primitive_desc(src, target, attr));
  add_primitive(Plan::backward,
                fmt::format("{} -> d{} ({})", label, name, accumulate ? "add" : "copy"), reorder,
                {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, target}});
}

void OnednnProgram::plan_fusion() {
  // A Conv, Dense or BatchNormalization whose only consumer is a Relu gets it fused, unless its
  // pre-activation must stay visible (graph output, kept value, loss).
  std::map<std::string, std::vector<std::size_t>> consumers;
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    for (const auto& in : graph_.nodes[i].inputs) {
      if (!in.empty()) consumers[in].push_back(i);
    }
  }
  std::set<std::string> visible(graph_.outputs.begin(), graph_.outputs.end());
  visible.insert(options_.keep.begin(), options_.keep.end());
  if (!options_.loss.empty()) visible.insert(options_.loss);
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    const Node& node = graph_.nodes[i];
    // (A batch norm takes it as oneDNN's fuse_norm_relu: the mask goes to a workspace.)
    if (!node.is(OpId::Conv) && !node.is(OpId::Dense) && !node.is(OpId::BatchNormalization))
      continue;
    const std::string& out = node.outputs[0];
    if (visible.count(out)) continue;
    const auto& users = consumers[out];
    if (users.size() != 1) continue;
    const Node& user = graph_.nodes[users[0]];
    if (!user.is(OpId::Relu)) continue;
    fused_relu_[i] = users[0];
    skipped_.insert(users[0]);
    value(out).fused_away = true;
  }
  // Inference: a Flatten of a 4-D tensor read only by a Dense is folded into it (the dense layer
  // reads the 4-D tensor in its producer's layout, with its weights reordered once to match),
  // saving a reorder of the activation to plain NCHW per batch. Training keeps the Flatten: there
  // the weights change every step and the optimizer updates them in their plain layout.
  std::vector<std::pair<std::string, std::size_t>> folded;  // (4-D source, dense node)
  if (!options_.training) {
    for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
      const Node& node = graph_.nodes[i];
      if (!node.is(OpId::Flatten) || attr_int(node, "axis") != 1) continue;
      if (value(node.inputs[0]).shape.size() != 4) continue;
      const std::string& out = node.outputs[0];
      if (visible.count(out)) continue;
      const auto& users = consumers[out];
      if (users.size() != 1) continue;
      const Node& user = graph_.nodes[users[0]];
      if (!user.is(OpId::Dense) || user.inputs[0] != out) continue;
      folded_flatten_[user.name] = node.inputs[0];
      folded.emplace_back(node.inputs[0], users[0]);
      skipped_.insert(i);
    }
  }
  // Who reads each value (bf16_readers_only): the nodes that are lowered, and a dense layer
  // reads the source of the Flatten folded into it.
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (skipped_.count(i)) continue;
    const Node& node = graph_.nodes[i];
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      if (!node.inputs[k].empty()) readers_[node.inputs[k]].push_back({i, k});
    }
  }
  for (const auto& [source, dense] : folded) readers_[source].push_back({dense, 0});
  visible_ = std::move(visible);
}

const std::string* OnednnProgram::folded_flatten(const Node& dense) const {
  auto it = folded_flatten_.find(dense.name);
  return it == folded_flatten_.end() ? nullptr : &it->second;
}

bool OnednnProgram::bf16_readers_only(const std::string& name) const {
  if (visible_.count(name)) return false;
  auto it = readers_.find(name);
  if (it == readers_.end() || it->second.empty()) return false;
  // Training: one reader, so that the value's bf16 gradient takes one contribution and no sum is
  // ever accumulated in bf16.
  if (options_.training && it->second.size() != 1) return false;
  for (const auto& [index, input] : it->second) {
    const Node& reader = graph_.nodes[index];
    if (input != 0) return false;
    // A layer reads its src in bf16 when it computes in bf16 and converts it otherwise. Dense
    // layers train in f32 under auto for their inputs' precision (compute_type), so in training
    // only a convolution reads a bf16 activation.
    if (reader.is(OpId::Conv) || (reader.is(OpId::Dense) && !options_.training)) continue;
    // Pass-through readers keep the dtype (oneDNN's pooling and batch norm take src and dst in
    // one dtype): they qualify when their own output does.
    const bool pool = reader.is(OpId::MaxPool) || reader.is(OpId::AveragePool) ||
                      reader.is(OpId::GlobalAveragePool);
    if (pool && bf16_readers_only(reader.outputs[0])) continue;
    if (reader.is(OpId::BatchNormalization)) {
      auto fused = fused_relu_.find(index);
      const std::string& out =
          fused == fused_relu_.end() ? reader.outputs[0] : graph_.nodes[fused->second].outputs[0];
      if (bf16_readers_only(out)) continue;
    }
    return false;
  }
  return true;
}

void OnednnProgram::lower(Plan plan) {
  for (std::size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (skipped_.count(i)) continue;
    const Node& node = graph_.nodes[i];
    auto fused = fused_relu_.find(i);
    const Node* relu = fused == fused_relu_.end() ? nullptr : &graph_.nodes[fused->second];
    try {
      onednn::lower_node(*this, node, relu, plan);
    } catch (const dnnl::error& e) {
      fail("onednn backend cannot run node '{}' ({}): oneDNN 2.6 rejected it ({}, status {})",
           node.name, node.op, e.what(), static_cast<int>(e.status));
    }
  }
}

// ---- running
// -------------------------------------------------------------------------------------

namespace {

// MXCSR bits: flush denormal results to zero (FTZ, bit 15) and read denormal inputs as zero (DAZ,
// bit 6). oneDNN sets them inside its own kernels only; our loops (the optimizer above all, whose
// Adam moments decay into denormals as training converges) would otherwise run at a fraction of
// their speed on denormal operands.
constexpr unsigned kFlushDenormals = 0x8040;

// The team size for which this thread's OpenMP workers already flush denormals (libgomp keeps one
// pool of workers per calling thread, so the record is per calling thread).
thread_local int flushing_team = 0;

}  // namespace

ComputeScope::ComputeScope(int threads) : saved_csr_(_mm_getcsr()) {
  omp_set_num_threads(threads);
  _mm_setcsr(saved_csr_ | kFlushDenormals);
  if (threads > flushing_team) {
    // The workers keep the flags (they only ever run compute); this calling thread gets its own
    // back when the scope ends.
#pragma omp parallel num_threads(threads)
    if (omp_get_thread_num() != 0) _mm_setcsr(_mm_getcsr() | kFlushDenormals);
    flushing_team = threads;
  }
}

ComputeScope::~ComputeScope() { _mm_setcsr(saved_csr_); }

bool flushes_denormals() { return (_mm_getcsr() & kFlushDenormals) == kFlushDenormals; }

ComputeScope OnednnProgram::prepare_threads() const { return ComputeScope(threads_); }

void OnednnProgram::prepare_weights() {
  if (prepared_version_ == parameter_version_) return;
  run_steps(weight_steps_, "weights");
  prepared_version_ = parameter_version_;
}

namespace {

void run_step(const Step& step, const char* plan) {
  try {
    step.run();
  } catch (const dnnl::error& e) {
    fail("onednn backend: step '{}' of the {} plan failed: {}", step.label, plan, e.what());
  }
}

}  // namespace

bool OnednnProgram::damage_guard_bytes() {
  if (guarded_.empty()) return false;
  arena_[guarded_.front()->offset + guarded_.front()->used] = 0;
  return true;
}

void OnednnProgram::check_guards(const std::string& step, const char* plan) const {
  auto intact = [&](std::size_t from, std::size_t bytes) {
    const char* p = arena_ + from;
    return std::all_of(p, p + bytes,
                       [](char c) { return static_cast<unsigned char>(c) == kGuardPattern; });
  };
  for (const Buffer* b : guarded_) {
    const bool before = intact(b->offset - kGuardBytes, kGuardBytes);
    const bool after = intact(b->offset + b->used, b->size - b->used + kGuardBytes);
    if (!before || !after) {
      fail(
          "onednn backend: step '{}' of the {} plan wrote {} a buffer of {} bytes (guard bytes at "
          "arena offset {} changed)",
          step, plan, after ? "before" : "past", b->used, b->offset);
    }
  }
}

void OnednnProgram::run_steps(std::vector<Step>& steps, const char* name) {
  if (guard_bytes_) {
    for (const auto& step : steps) {
      run_step(step, name);
      stream_.wait();
      check_guards(step.label, name);
    }
    return;
  }
  if (!profiling_) {
    for (const auto& step : steps) run_step(step, name);
    stream_.wait();
    return;
  }
  for (auto& step : steps) {
    const auto start = std::chrono::steady_clock::now();
    run_step(step, name);
    stream_.wait();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto key = std::make_pair(std::string(name), step.label);
    auto [it, inserted] = times_.try_emplace(key, 0.0, 0);
    if (inserted) time_order_.push_back(key);
    it->second.first += seconds;
    it->second.second += 1;
  }
}

void OnednnProgram::run_plan(Plan plan) {
  run_steps(plans_[static_cast<int>(plan)], plan_name(plan));
}

void OnednnProgram::forward(Mode mode) {
  const ComputeScope scope = prepare_threads();
  prepare_weights();
  if (mode == Mode::training) {
    if (!options_.training) {
      fail("onednn backend: forward(training) needs a Program compiled with training = true");
    }
    // Masks depend on (seed, optimizer step) only: a resumed run draws the same ones.
    dropout_seed_ = hash_name("dropout " + std::to_string(step()), options_.seed);
    run_plan(Plan::training);
    have_training_forward_ = true;
    forward_consumed_ = false;
  } else {
    run_plan(Plan::inference);
    have_training_forward_ = false;
  }
}

void OnednnProgram::seed_and_run_backward(const std::map<std::string, Tensor>& seeds,
                                          bool seed_loss) {
  const ComputeScope scope = prepare_threads();
  if (!options_.training) {
    fail("onednn backend: backward needs a Program compiled with training = true and a loss");
  }
  if (!have_training_forward_) {
    fail("onednn backend: backward needs forward(Mode::training) first");
  }
  if (forward_consumed_) {
    fail(
        "onednn backend: a second backward needs a new forward(Mode::training) (backward reuses "
        "the buffers of the forward it consumed)");
  }
  for (const auto& [name, seed] : seeds) {
    const Value& v = value(name);
    if (!v.seedable || !v.grad) {
      fail(
          "onednn backend: cannot seed '{}': only the loss, graph outputs and values in "
          "CompileOptions::keep that depend on a trainable parameter (or an input with "
          "input_gradients) can be seeded",
          name);
    }
    if (seed.shape() != v.shape && element_count(seed.shape()) != element_count(v.shape)) {
      fail("onednn backend: seed for '{}' has shape {}, expected {}", name, to_string(seed.shape()),
           to_string(v.shape));
    }
  }
  for (auto& [name, v] : values_) {
    if (!v.seedable || !v.grad) continue;
    auto it = seeds.find(name);
    if (it != seeds.end()) {
      write_plain(v, v.grad, it->second.reshaped(v.shape));
    } else {
      std::memset(v.grad.get_data_handle(), 0, v.md.get_size());
      if (seed_loss && name == options_.loss) {
        *static_cast<float*>(v.grad.get_data_handle()) = 1.0f;
      }
    }
  }
  run_plan(Plan::backward);
  forward_consumed_ = arena_ != nullptr;
}

void OnednnProgram::backward() { seed_and_run_backward({}, true); }

void OnednnProgram::backward(const std::map<std::string, Tensor>& seeds) {
  seed_and_run_backward(seeds, false);
}

// ---- edges
// ---------------------------------------------------------------------------------------

OnednnProgram::Edge& OnednnProgram::edge(const Value& v, const memory& mem, bool gradient) const {
  auto key = std::make_pair(v.name, gradient);
  auto it = edges_.find(key);
  if (it != edges_.end()) return it->second;
  Edge e;
  const Desc plain = plain_desc(v.shape);
  if (mem.get_desc() == plain) {
    e.plain = mem;
  } else {
    e.plain = memory(plain, engine_);
    e.to_plain = dnnl::reorder(mem, e.plain);
    e.from_plain = dnnl::reorder(e.plain, mem);
  }
  return edges_.emplace(key, std::move(e)).first->second;
}

Tensor OnednnProgram::read_plain(const Value& v, const memory& mem) const {
  const bool gradient = mem.get_data_handle() != v.mem.get_data_handle();
  Edge& e = edge(v, mem, gradient);
  if (e.to_plain) {
    e.to_plain->execute(stream_, {{DNNL_ARG_FROM, mem}, {DNNL_ARG_TO, e.plain}});
    stream_.wait();
  }
  Tensor t(DType::f32, v.shape);
  std::memcpy(t.raw(), e.plain.get_data_handle(), t.byte_size());
  return t;
}

void OnednnProgram::write_plain(const Value& v, const memory& mem, const Tensor& t) {
  if (element_count(t.shape()) != element_count(v.shape)) {
    fail("onednn backend: '{}' has shape {}, got a tensor of shape {}", v.name, to_string(v.shape),
         to_string(t.shape()));
  }
  // An f32 tensor is copied once, straight into the value's plain staging (no converted copy).
  std::optional<Tensor> converted;
  if (t.dtype() != DType::f32) converted = t.to(DType::f32);
  const Tensor& f = converted ? *converted : t;
  const bool gradient = mem.get_data_handle() != v.mem.get_data_handle();
  Edge& e = edge(v, mem, gradient);
  std::memcpy(e.plain.get_data_handle(), f.raw(), f.byte_size());
  if (e.from_plain) {
    e.from_plain->execute(stream_, {{DNNL_ARG_FROM, e.plain}, {DNNL_ARG_TO, mem}});
    stream_.wait();
  }
}

void OnednnProgram::write_input(const std::string& name, const Tensor& t) {
  check_input_dtype(name, t);
  Value& v = value(name);
  if (v.dtype == DType::i64) {
    const auto data = t.data<std::int64_t>();
    std::copy(data.begin(), data.end(), v.ints.begin());
    return;
  }
  write_plain(v, v.mem, t);
}

Tensor OnednnProgram::fetch(const std::string& name) const {
  const Value& v = value(name);
  if (v.fused_away) {
    fail(
        "onednn backend: '{}' was fused into a ReLU post-op and is never materialised; name it in "
        "CompileOptions::keep to fetch it",
        name);
  }
  if (!v.defined) fail("onednn backend: '{}' is not computed by this Program", name);
  if (!v.ints.empty() || v.dtype == DType::i64) {
    return Tensor::from<std::int64_t>(v.shape, v.ints);
  }
  return read_plain(v, v.mem);
}

Tensor OnednnProgram::read_gradient(const std::string& name) const {
  const Value& v = value(name);
  if (!v.grad) return Tensor(DType::f32, v.shape);
  return read_plain(v, v.grad);
}

void OnednnProgram::write_gradient(const std::string& name, const Tensor& t) {
  const Value& v = value(name);
  write_plain(v, v.grad, t);
}

double OnednnProgram::gradient_sum_of_squares(const std::string& name) const {
  const Value& v = value(name);
  if (!v.grad) return 0.0;
  return sum_of_squares(static_cast<const float*>(v.grad.get_data_handle()),
                        v.md.get_size() / sizeof(float));
}

double OnednnProgram::sum_of_gradient_squares() const {
  const ComputeScope scope = prepare_threads();
  return ProgramBase::sum_of_gradient_squares();
}

void OnednnProgram::update_parameters(const UpdateStep& step) {
  const ComputeScope scope = prepare_threads();
  ProgramBase::update_parameters(step);
  ++parameter_version_;
}

void OnednnProgram::update_parameter(const std::string& name, const UpdateStep& step) {
  Value& v = value(name);
  const bool adam = step.adam();
  const std::size_t n = v.md.get_size() / sizeof(float);
  Slots& slots = slots_[name];
  if (slots.a.size() != n) slots.a.assign(n, 0.0f);
  if (adam && slots.b.size() != n) slots.b.assign(n, 0.0f);
  const auto start = std::chrono::steady_clock::now();
  optimizer_step(step.constants_f32, static_cast<float*>(v.mem.get_data_handle()),
                 static_cast<const float*>(v.grad.get_data_handle()), slots.a.data(),
                 adam ? slots.b.data() : nullptr, n);
  if (profiling_) {
    const auto key = std::make_pair(std::string("update"), name);
    auto [it, inserted] = times_.try_emplace(key, 0.0, 0);
    if (inserted) time_order_.push_back(key);
    it->second.first +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    it->second.second += 1;
  }
}

Tensor OnednnProgram::read_parameter(const std::string& name) const {
  const Value& v = value(name);
  if (!v.ints.empty()) return Tensor::from<std::int64_t>(v.shape, v.ints);
  return read_plain(v, v.mem);
}

void OnednnProgram::write_parameter(const std::string& name, const Tensor& t) {
  Value& v = value(name);
  if (!v.ints.empty()) {
    const auto data = t.data<std::int64_t>();
    std::copy(data.begin(), data.end(), v.ints.begin());
    return;
  }
  write_plain(v, v.mem, t);
  ++parameter_version_;
}

std::optional<Tensor> OnednnProgram::read_optimizer_slot(const std::string& name,
                                                         bool second) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) return std::nullopt;
  const std::vector<float>& slot = second ? it->second.b : it->second.a;
  if (slot.empty()) return std::nullopt;
  return Tensor::from<float>(value(name).shape, slot);
}

void OnednnProgram::write_optimizer_slot(const std::string& name, bool second, const Tensor& t) {
  const auto data = t.data<float>();
  Slots& slots = slots_[name];
  (second ? slots.b : slots.a).assign(data.begin(), data.end());
}

// ---- profiling
// -----------------------------------------------------------------------------------

void OnednnProgram::set_profiling(bool on) { profiling_ = on; }

std::vector<StepTime> OnednnProgram::step_times() const {
  std::vector<StepTime> out;
  for (const auto& key : time_order_) {
    const auto& [seconds, calls] = times_.at(key);
    out.push_back({key.first, key.second, seconds, calls});
  }
  return out;
}

std::string OnednnProgram::memory_summary() const {
  const double mib = 1024.0 * 1024.0;
  return fmt::format(
      "memory: {:.1f} MiB pinned (parameters with their views and gradients, inputs, outputs; "
      "optimizer slots apart), {:.1f} MiB of activations, their gradients and temporaries in a "
      "{:.1f} MiB arena, {:.1f} MiB in small or padded buffers",
      memory_plan_.pinned / mib, memory_plan_.planned / mib, memory_plan_.arena / mib,
      memory_plan_.small / mib);
}

std::string OnednnProgram::describe() const {
  std::string text;
  auto list = [&](const char* name, const std::vector<Step>& steps) {
    text += fmt::format("{} ({} steps)\n", name, steps.size());
    for (const auto& step : steps) text += fmt::format("  {}\n", step.label);
  };
  list("weights", weight_steps_);
  list("training", plans_[static_cast<int>(Plan::training)]);
  list("backward", plans_[static_cast<int>(Plan::backward)]);
  list("inference", plans_[static_cast<int>(Plan::inference)]);
  text += memory_summary() + "\n";
  return text;
}

}  // namespace onnxforge::onednn
