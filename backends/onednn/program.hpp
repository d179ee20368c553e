// Internals of the oneDNN backend: the Program, its values (memories, layout views, gradients)
// and its plans (lists of steps built once at compile time).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.hpp"
#include "backends/onednn/onednn_backend.hpp"
#include "backends/program_base.hpp"
#include "graph/ops.hpp"

namespace onnxforge::onednn {

using dnnl::memory;
using Desc = memory::desc;
using Tag = memory::format_tag;
using DataType = memory::data_type;

// The plans of a Program. Training forward and inference forward are separate plans because their
// primitives differ (forward_training keeps workspaces, batch norm uses batch statistics).
enum class Plan { inference = 0, training = 1, backward = 2 };
inline constexpr int kPlanCount = 3;

struct Step {
  std::string label;
  std::function<void()> run;
  // Every memory the step reads or writes: the memory plan places buffers by these.
  std::vector<memory> touches;
};

// Another layout (or dtype) of a value, filled by a reorder in the plans that use it.
struct View {
  Desc md;
  memory mem;
  bool produced[kPlanCount] = {false, false, false};
};

struct Value {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  bool defined = false;
  Desc md;     // the canonical layout, chosen by the producing primitive
  memory mem;  // canonical storage
  std::vector<View> views;
  bool parameter = false;  // an initializer: its canonical layout is plain, views are reordered
                           // once per parameter change ("weights" plan)
  bool trainable = false;
  bool fused_away = false;         // a pre-activation that a fused ReLU post-op never materialises
  std::vector<std::int64_t> ints;  // i64 values (class labels)

  // Gradient (training): canonical layout, allocated on the first contribution.
  memory grad;
  bool grad_claimed = false;  // a contribution that overwrites it is already planned
  bool seedable = false;      // a root of backward: seeded (or zeroed) before the plan runs
};

// Where a backward step writes its contribution to a value's gradient: directly into the
// gradient, or into a temporary that a reorder then copies or adds into it.
struct GradSink {
  std::string value;
  memory mem;
  std::optional<Step> finish;
};

// While alive: the calling thread and its OpenMP workers run `threads` wide with denormals
// flushed to zero (FTZ + DAZ); the calling thread's own floating-point flags come back after.
// Every entry point of a Program that computes opens one.
class [[nodiscard]] ComputeScope {
 public:
  explicit ComputeScope(int threads);
  ~ComputeScope();
  ComputeScope(const ComputeScope&) = delete;
  ComputeScope& operator=(const ComputeScope&) = delete;

 private:
  unsigned saved_csr_;
};
// Whether the calling thread flushes denormals now (for tests).
bool flushes_denormals();

// Zero-filled memories for compile-time measurements, unmapped (returned to the system, not
// kept by the allocator for later) when this goes; memories made by it must not outlive it.
class ScratchMemories {
 public:
  explicit ScratchMemories(dnnl::engine engine) : engine_(std::move(engine)) {}
  ~ScratchMemories();
  ScratchMemories(const ScratchMemories&) = delete;
  ScratchMemories& operator=(const ScratchMemories&) = delete;
  memory make(const Desc& md);

 private:
  dnnl::engine engine_;
  std::vector<std::pair<void*, std::size_t>> pages_;
};

// What the memory plan of a Program did (bytes).
struct MemoryPlan {
  std::size_t pinned = 0;   // buffers that live across plan runs: parameters, their views and
                            // gradients, inputs, outputs, kept values, seeded gradients
  std::size_t planned = 0;  // the other buffers (activations, their gradients, temporaries), one
                            // after the other
  std::size_t arena = 0;    // what those occupy once buffers that are never live at the same time
                            // share bytes
  std::size_t small = 0;    // buffers below the planning threshold, or with padded layouts
};

class OnednnProgram final : public ProgramBase {
 public:
  OnednnProgram(const Graph& graph, const CompileOptions& options);
  ~OnednnProgram() override;
  OnednnProgram(const OnednnProgram&) = delete;
  OnednnProgram& operator=(const OnednnProgram&) = delete;

  void forward(Mode mode) override;
  Tensor fetch(const std::string& value) const override;
  void backward() override;
  void backward(const std::map<std::string, Tensor>& seeds) override;

  void set_profiling(bool on);
  std::vector<StepTime> step_times() const;
  std::string describe() const;
  std::string memory_summary() const;
  bool damage_guard_bytes();  // tests only: see onednn_backend.hpp
  const MemoryPlan& memory_plan() const { return memory_plan_; }

  // ---- used by the op lowerings (lower.cpp, lower/<family>.cpp) ----
  dnnl::engine& engine() { return engine_; }
  dnnl::stream& stream() { return stream_; }
  Value& value(const std::string& name);
  const Value& value(const std::string& name) const;
  bool needs_gradient(const std::string& name) const { return needs_grad_.count(name) != 0; }
  // The dtype of a Conv / Dense node's src, weights and diff_dst (its dst is f32 unless
  // bf16_readers_only; weight gradients and master weights stay f32). Precision::automatic
  // decides once per node: bf16 only on a CPU that computes it natively and when `measure`
  // (seconds of the layer's step in a dtype) finds it at least 10% faster.
  DataType compute_type(const Node& node, const std::function<double(DataType)>& measure);
  // A value is stored in bf16 (and in training so is its gradient) when its producer computes
  // in bf16 and every reader takes bf16 as it is: a convolution (which converts it when it
  // computes in f32), in inference a dense layer too, or a pooling or batch norm whose own output
  // qualifies. In training the value must have one reader. The rounding is the one the reader's
  // bf16 src applies anyway; weight gradients and optimizer state stay f32.
  bool bf16_readers_only(const std::string& name) const;
  // The 4-D value a Dense reads through a Flatten folded into it (inference), or null.
  const std::string* folded_flatten(const Node& dense) const;
  // Notes how a node runs for layer_choices() (the first plan to lower it decides: training).
  void record_choice(const Node& node, DataType type, const std::string& implementation,
                     const std::string& why = "");
  std::vector<LayerChoice> layer_choices() const override { return choices_; }

  // A fresh zero-filled memory owned by the Program. Large ones are placed by the memory plan at
  // the end of compile: steps must name every memory they touch (Step::touches), and a value
  // that is read before any step writes it must be pinned (pin()).
  memory allocate(const Desc& md);
  // Keeps the buffer behind `mem` out of the memory plan: its bytes are its own for the
  // Program's life.
  void pin(const memory& mem);
  // Gives a value its canonical layout and storage (once; later calls must agree).
  memory& define(const std::string& name, const Desc& md);
  // Defines a value as another view of existing bytes (Flatten, Reshape, Identity).
  memory& define_alias(const std::string& name, const Desc& md, void* handle);
  // The desc a producer should ask for: the canonical one when already chosen, else `any`.
  Desc output_desc(const std::string& name, DataType type = DataType::f32);
  // The value in layout `md` for `plan`: its canonical memory, or a view filled by a reorder
  // step (parameters: in the weights plan, run when parameters changed). `as` reinterprets the
  // plain canonical bytes with another plain desc first (grouped weights: O,I,H,W as G,O,I,H,W).
  memory use(const std::string& name, const Desc& md, Plan plan,
             const std::optional<Desc>& as = std::nullopt);
  // `source` (a parameter's view from use()) reordered into a new memory of `md` in the weights
  // plan, after the step that fills it: layouts that take two reorders from the plain bytes.
  memory weight_reorder(const memory& source, const Desc& md, const std::string& label);
  // `src` converted to `md` by a reorder step appended to `plan` (or `src` when equal).
  memory convert(const memory& src, const Desc& md, Plan plan, const std::string& label);

  // Appends a step to a plan; `touches` lists every memory `run` reads or writes.
  void add(Plan plan, std::string label, std::vector<memory> touches, std::function<void()> run);
  void add_primitive(Plan plan, std::string label, dnnl::primitive primitive,
                     std::unordered_map<int, memory> args);
  // Registers the backward lowering of a node; they are run in reverse order after the forward.
  void add_backward_builder(std::function<void()> builder) {
    backward_builders_.push_back(std::move(builder));
  }

  // The gradient of `name` in layout `md` (backward plan; reorders when needed).
  memory gradient_in(const std::string& name, const Desc& md);
  // Where to write a contribution to the gradient of `name` produced in layout `md`; `as` as in
  // use(). Call finish() after adding the step that writes it.
  GradSink gradient_sink(const std::string& name, const Desc& md,
                         const std::optional<Desc>& as = std::nullopt);
  void finish(GradSink& sink);
  // Adds (or copies) `src` into the gradient of `name`.
  void contribute(const std::string& name, const memory& src, const std::string& label);

  // A 64-bit number that changes every training forward (dropout masks).
  std::uint64_t dropout_seed() const { return dropout_seed_; }

 private:
  void plan_fusion();
  void lower(Plan plan);
  void plan_memory();
  // Appends a reorder from -> to to the weights plan (run when parameters changed).
  void add_weight_reorder(const std::string& label, const memory& from, const memory& to);
  void run_plan(Plan plan);
  void run_steps(std::vector<Step>& steps, const char* plan_name);
  void prepare_weights();
  ComputeScope prepare_threads() const;
  void seed_and_run_backward(const std::map<std::string, Tensor>& seeds, bool seed_loss);
  Tensor read_plain(const Value& v, const memory& mem) const;
  void write_plain(const Value& v, const memory& mem, const Tensor& t);

  // ---- storage hooks of ProgramBase ----
  void write_input(const std::string& name, const Tensor& value) override;
  Tensor read_parameter(const std::string& name) const override;
  void write_parameter(const std::string& name, const Tensor& value) override;
  Tensor read_gradient(const std::string& name) const override;
  void write_gradient(const std::string& name, const Tensor& value) override;
  double gradient_sum_of_squares(const std::string& name) const override;
  double sum_of_gradient_squares() const override;
  void update_parameter(const std::string& name, const UpdateStep& step) override;
  void update_parameters(const UpdateStep& step) override;
  std::optional<Tensor> read_optimizer_slot(const std::string& name, bool second) const override;
  void write_optimizer_slot(const std::string& name, bool second, const Tensor& value) override;

  int threads_ = 1;
  dnnl::engine engine_;
  mutable dnnl::stream stream_;
  std::map<std::string, Value> values_;
  std::vector<Step> plans_[kPlanCount];
  std::vector<Step> weight_steps_;
  std::vector<std::function<void()>> backward_builders_;
  std::set<std::string> needs_grad_;
  std::map<std::size_t, std::size_t> fused_relu_;      // Conv/Dense node index -> its Relu's index
  std::set<std::size_t> skipped_;                      // nodes folded into another one
  std::map<std::string, std::string> folded_flatten_;  // Dense node -> its Flatten's 4-D input
  // Readers of each value (node index, input index) among the lowered nodes, through folded
  // Flattens.
  std::map<std::string, std::vector<std::pair<std::size_t, std::size_t>>> readers_;
  std::set<std::string> visible_;  // outputs, kept values, the loss
  std::map<std::string, std::pair<DataType, std::string>> precision_;  // node -> dtype, why
  std::vector<LayerChoice> choices_;

  std::uint64_t parameter_version_ = 1;
  std::uint64_t prepared_version_ = 0;
  bool have_training_forward_ = false;
  std::uint64_t dropout_seed_ = 0;

  // Optimizer slots, plain like the parameters.
  struct Slots {
    std::vector<float> a;  // velocity (sgd) or m (adam)
    std::vector<float> b;  // v (adam)
  };
  std::map<std::string, Slots> slots_;

  // Temporaries of gradient contributions, reused between contributions of equal layout.
  struct Scratch {
    Desc md;
    memory mem;
    bool busy = false;
  };
  std::vector<Scratch> scratch_;
  // Copies made by convert() in the backward plan, by source (shared by equal requests).
  struct Converted {
    memory source;
    memory mem;
  };
  std::vector<Converted> backward_converts_;
  // Plain staging memories and reorders for fetch / set at the edges, created on first use.
  struct Edge {
    memory plain;
    std::optional<dnnl::reorder> to_plain, from_plain;
  };
  mutable std::map<std::pair<std::string, bool>, Edge> edges_;  // (value, gradient?)
  Edge& edge(const Value& v, const memory& mem, bool gradient) const;

  // Buffers of allocate() at or above kPlannedBytes: mapped untouched at compile time, then moved
  // by plan_memory() into one arena where buffers that are never live at the same time (by the
  // steps that touch them, in a run of the inference plan or of training then backward) share
  // bytes.
  struct Buffer {
    char* data = nullptr;
    std::size_t size = 0;
    bool pinned = false;
    // Positions of the first and last step touching it, in the inference plan [0] and in the
    // training and backward plans [1] (-1: none).
    std::int64_t first[2] = {-1, -1}, last[2] = {-1, -1};
    std::size_t offset = 0;  // in the arena, once placed
    bool placed = false;
    std::size_t used = 0;  // bytes of its memory descriptor (size is rounded up to pages)
  };
  // ONNXFORGE_GUARD_BYTES=1 (a debug option): every planned buffer gets its own arena bytes
  // between guard pages of a known pattern, which are checked after every step; a step that
  // writes past its buffers fails naming itself. Pinned and small buffers are not guarded.
  bool guard_bytes_ = false;
  std::vector<const Buffer*> guarded_;
  void check_guards(const std::string& step, const char* plan) const;
  std::vector<Buffer> buffers_;
  Buffer* buffer_of(const void* handle);
  char* arena_ = nullptr;
  MemoryPlan memory_plan_;
  // The arena shares the training forward's buffers with backward: a second backward needs a
  // new forward.
  bool forward_consumed_ = false;

  bool profiling_ = false;
  mutable std::map<std::pair<std::string, std::string>, std::pair<double, std::int64_t>> times_;
  std::vector<std::pair<std::string, std::string>> time_order_;
};

// ---- op lowerings (lower.cpp; each family's ops in lower/<family>.cpp) -------------------------
// The ISA oneDNN runs at (after any ONEDNN_MAX_CPU_ISA cap): "avx2", "avx512_core_bf16", ...
std::string isa_name();
// Whether oneDNN computes bf16 natively here (avx512_core_bf16 or AMX), not by emulation.
bool cpu_has_native_bf16();
// Whether the backend can run `node`: its op's answer in the op table, then dtypes, attributes,
// this CPU's ISA for bf16.
Support node_support(const Graph& graph, const Node& node, const CompileOptions& options);
// The op table's answer for `op` (Backend::coverage).
OpCoverage op_coverage(OpId op);
// Lowers one node into `plan` (and registers its backward when plan is training), by the op
// table. `fused_relu` is the Relu node folded into a Conv/Dense/BatchNormalization, or null.
void lower_node(OnednnProgram& program, const Node& node, const Node* fused_relu, Plan plan);
// A plain (row-major) f32 desc of a shape; a scalar is {1}.
Desc plain_desc(const Shape& shape, DataType type = DataType::f32);
memory::dims dims_of(const Shape& shape);

// Element counts below which a loop stays on the calling thread: a parallel region costs more
// than it saves there (and much more on a busy machine).
inline constexpr std::int64_t kParallelThreshold = 16384;

// ---- loops (loops.cpp): plain or layout-agnostic element-wise work, OpenMP-parallel ----------
// One optimizer step on float buffers: OptimizerConstants<float> (backends/backend.hpp), OpenMP
// parallel and vectorised.
void optimizer_step(const OptimizerConstants<float>& k, float* w, const float* g, float* slot_a,
                    float* slot_b, std::size_t n);
// The same with the constants of (spec, step, gradient_scale).
inline void optimizer_step(const OptimizerSpec& spec, std::int64_t step, double gradient_scale,
                           float* w, const float* g, float* slot_a, float* slot_b, std::size_t n) {
  optimizer_step(OptimizerConstants<float>(spec, step, gradient_scale), w, g, slot_a, slot_b, n);
}
double sum_of_squares(const float* x, std::size_t n);
// Inverted dropout: mask = (u >= ratio) / (1 - ratio), y = x * mask, u from (seed, i).
void dropout_forward(const float* x, float* y, float* mask, std::size_t n, double ratio,
                     std::uint64_t seed);
void multiply(const float* a, const float* b, float* out, std::size_t n);
// ReLU backward from its output y in bf16, in place on dy (same layout): dy = y > 0 ? dy : 0.
// The f32 output rounded to bf16 keeps its sign and stays nonzero (same exponent range; a
// denormal reads as zero under DAZ in both), so the mask is the f32 one.
void relu_backward_from_bf16(const std::uint16_t* y, float* dy, std::size_t n);

// Max pooling on a layout with channels in blocks of `block`: nChw8c, nChw16c (block 8, 16),
// channels-last nhwc (one block of all C channels) or planar nchw (block 1). Element (n, c, h, w)
// sits at n*sn + (c/block)*sc + h*sh + w*sw + c%block. The loops run 16 or 8 consecutive channels
// of a block per vector, single channels for the rest; see docs/BENCHMARKS.md for why they stand
// in for oneDNN 2.6's pooling primitive.
struct PoolGeometry {
  std::int64_t batch = 0, channel_blocks = 0, block = 1;
  std::int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  Window2d win;
  std::int64_t src_n = 0, src_c = 0, src_h = 0, src_w = 0;  // strides of src
  std::int64_t dst_n = 0, dst_c = 0, dst_h = 0, dst_w = 0;  // strides of dst
};
// The geometry of a max pooling from src and dst descs (4-D f32, both in the same one of the
// layouts above) and its window; nothing for any other layout or a window over 255 taps.
std::optional<PoolGeometry> pool_geometry(const Desc& src, const Desc& dst, const Window2d& win);
// y = max over each window (first maximum in scan order wins); `argmax` (may be null) gets the
// winning tap (kh * kernel_w + kw, 255 when the window holds no input) per dst element.
void max_pool_forward(const PoolGeometry& g, const float* x, float* y, std::uint8_t* argmax);
// dx = 0, then dx[tap] += dy per dst element.
void max_pool_backward(const PoolGeometry& g, const float* dy, const std::uint8_t* argmax,
                       float* dx);

}  // namespace onnxforge::onednn
