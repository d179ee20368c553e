// The backend contract (DESIGN.md): a Backend answers supports(node) per op and compiles a whole
// Graph into a Program that owns its memory. A Program runs forward (inference or training mode),
// backward from the loss, and the optimizer update on its own memory; host <-> device copies
// happen only at its edges (set_input, fetch, parameter import/export).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "graph/op_id.hpp"

namespace onnxforge {

enum class Mode { inference, training };

// The precision of convolutions and dense layers (every other op computes in f32):
//   f32        exact f32;
//   bf16       bf16 inputs, weights and output gradients, f32 accumulation, f32 master weights,
//              gradients and optimizer state (mixed precision);
//   automatic  per layer: bf16 where this CPU computes bf16 natively (avx512_bf16, AMX) and a
//              measurement at compile time finds that layer faster in bf16, f32 elsewhere.
enum class Precision { f32, bf16, automatic };
std::string to_string(Precision precision);          // "fp32", "bf16", "auto"
Precision parse_precision(const std::string& text);  // those (and "f32"); throws Error

struct CompileOptions {
  // Build backward and update: needs `loss`, a scalar value of the graph (e.g. the output of a
  // BinaryCrossEntropyWithLogits node). Without it the Program runs inference only.
  bool training = false;
  std::string loss;
  // Also compute gradients with respect to the graph's (floating) inputs; for tests.
  bool input_gradients = false;
  // Values that fetch() must be able to return besides the graph outputs and the loss (a backend
  // may otherwise fuse them away).
  std::vector<std::string> keep;
  // Compute threads; 0 means all cores.
  int threads = 0;
  // Convolutions and dense layers: see Precision.
  Precision precision = Precision::f32;
  // Per node (by name), a precision that overrides `precision` (e.g. the choices another process
  // measured, so that data-parallel ranks compute alike).
  std::map<std::string, Precision> layer_precision;
  // Seeds dropout masks: a training forward's masks depend on (seed, optimizer step) only, so
  // that a run resumed from its optimizer state draws the same masks.
  std::uint64_t seed = 0;
};

// One optimizer step, Keras/PyTorch semantics:
//   sgd:   v = momentum*v - lr*g;  w += v  (nesterov: w += momentum*v - lr*g)
//   adam:  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
//          w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
//   adamw: adam, plus the decoupled w -= lr*weight_decay*w before it.
// For sgd and adam, weight_decay adds weight_decay*w to the gradient (L2).
// The gradient is first multiplied by `gradient_scale` (clipping by norm, averaging).
struct OptimizerSpec {
  enum class Kind { sgd, adam, adamw };
  Kind kind = Kind::sgd;
  double learning_rate = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-7;
  double weight_decay = 0.0;
};

class Program {
 public:
  virtual ~Program() = default;

  // Feeds a graph input (any floating dtype is converted; i64 for integer inputs).
  virtual void set_input(const std::string& name, const Tensor& value) = 0;
  // Runs the graph. Training mode uses batch statistics and dropout and keeps what backward needs;
  // it needs a Program compiled with training = true.
  virtual void forward(Mode mode) = 0;
  // A graph output, the loss, or a value named in CompileOptions::keep, in its graph dtype.
  virtual Tensor fetch(const std::string& value) const = 0;

  // Gradients of the loss (seeded with 1) into every trainable parameter (and the inputs when
  // input_gradients). Overwrites the previous gradients. Needs forward(Mode::training) first,
  // once per backward: a backend may reuse the forward's buffers during backward (oneDNN does).
  virtual void backward() = 0;
  // The same, seeded with given gradients of any values instead of the loss.
  virtual void backward(const std::map<std::string, Tensor>& seeds) = 0;
  // The gradient of a trainable parameter (or of an input when input_gradients).
  virtual Tensor gradient(const std::string& name) const = 0;
  // Replaces a trainable parameter's gradient (e.g. after an allreduce).
  virtual void set_gradient(const std::string& name, const Tensor& value) = 0;
  // Global L2 norm of all trainable parameters' gradients.
  virtual double gradient_norm() const = 0;
  // Applies one optimizer step to every trainable parameter.
  virtual void update(const OptimizerSpec& spec, double gradient_scale = 1.0) = 0;

  // Any initializer: trainable and frozen parameters, batch-norm running statistics.
  virtual Tensor parameter(const std::string& name) const = 0;
  virtual void set_parameter(const std::string& name, const Tensor& value) = 0;
  // Optimizer slots ("<param>/m", "<param>/v", "<param>/velocity") and "step"; for checkpoints.
  virtual std::map<std::string, Tensor> optimizer_state() const = 0;
  virtual void set_optimizer_state(const std::map<std::string, Tensor>& state) = 0;

  virtual const Graph& graph() const = 0;

  // How the compute-heavy layers run: one entry per Conv / Dense / pooling node (backends that
  // choose nothing per layer return none).
  struct LayerChoice {
    std::string node, op;
    std::string dtype;           // "fp32" | "bf16"
    std::string implementation;  // e.g. "brgconv:avx512_core_bf16", "loops"
    std::string why;             // e.g. "measured: fp32 1.20 ms, bf16 0.71 ms"
  };
  virtual std::vector<LayerChoice> layer_choices() const { return {}; }
};

struct Support {
  bool ok = true;
  std::string reason;  // why not, when !ok
};

// What a backend does with one op (docs/OPS.md shows it for every backend and op).
struct OpCoverage {
  bool lowered = false;   // runs forward, in inference and training
  bool backward = false;  // computes its input gradients
  bool bf16 = false;      // computes in bf16 under Precision::bf16 (and may under automatic)
  std::string note;       // the reason of a refusal; otherwise a limit worth knowing, or empty
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Whether this machine can run it at all (e.g. a GPU is visible); `why` says why not.
  virtual bool available(std::string* why) const {
    (void)why;
    return true;
  }
  virtual Support supports(const Graph& graph, const Node& node,
                           const CompileOptions& options) const = 0;
  // Its answer for `op` (from its op table, backends/op_table.hpp): every op is lowered or
  // refused with a reason.
  virtual OpCoverage coverage(OpId op) const = 0;
  // Validates a copy of a graph whose shapes are not inferred yet, checks it (check_compilable:
  // static shapes, the loss, supports() for every node), checks available(), then builds.
  // Throws Error naming the first node it cannot run and why; never falls back silently.
  // The graph must have static shapes (see with_batch).
  std::unique_ptr<Program> compile(const Graph& graph, const CompileOptions& options) const;

 protected:
  // The backend's own part of compile, on a validated and checked graph.
  virtual std::unique_ptr<Program> build(const Graph& graph,
                                         const CompileOptions& options) const = 0;
};

// ---- registry ----------------------------------------------------------------------------------
using BackendFactory = std::function<std::unique_ptr<Backend>()>;
// Backends compiled into this build: "reference", and "onednn" / "cudnn" when built.
std::vector<std::string> backend_names();
std::unique_ptr<Backend> make_backend(const std::string& name);  // throws listing the known ones

// ---- helpers shared by backends ----------------------------------------------------------------
// Checks what every compile needs: static shapes, a scalar loss when training, and supports()
// for every node; throws Error naming the node, its op and the reason.
void check_compilable(const Backend& backend, const Graph& graph, const CompileOptions& options);

// The values whose gradient backward must compute: those that depend on a trainable parameter
// (or on an input, with input_gradients) and on which one of `roots` depends.
std::set<std::string> values_needing_gradient(const Graph& graph,
                                              const std::vector<std::string>& roots,
                                              bool input_gradients);

// The one place optimizer arithmetic is written: constants of one step (in compute type C, from
// the double-precision spec) and the update of one element. apply_optimizer runs it on host
// spans in double; the oneDNN backend's optimizer_step runs it in float in a vectorised,
// OpenMP-parallel loop (loops.cpp); the cuDNN kernel mirrors it on the device. `step` counts from
// 1. slot_a: velocity (sgd) or m (adam); slot_b: v (adam).
// Adam / AdamW: w -= lr * (m / c1) / (sqrt(v / c2) + eps), the corrections c = 1 - beta^step
// folded into two constants; AdamW decays w by lr * decay first, the others add decay * w to g.
template <typename C>
struct OptimizerConstants {
  bool sgd = false, nesterov = false;
  C scale = 1, lr = 0, momentum = 0;  // gradient scale; sgd
  C b1 = 0, b2 = 0, one_minus_b1 = 1, one_minus_b2 = 1, step_size = 0, inv_sqrt_c2 = 1, eps = 0;
  C coupled_decay = 0, shrink = 1;  // L2 added to the gradient; decoupled decay (AdamW)

  OptimizerConstants(const OptimizerSpec& spec, std::int64_t step, double gradient_scale) {
    sgd = spec.kind == OptimizerSpec::Kind::sgd;
    nesterov = spec.nesterov;
    scale = static_cast<C>(gradient_scale);
    lr = static_cast<C>(spec.learning_rate);
    momentum = static_cast<C>(spec.momentum);
    const bool decoupled = spec.kind == OptimizerSpec::Kind::adamw;
    const double c1 = 1.0 - std::pow(spec.beta1, static_cast<double>(step));
    const double c2 = 1.0 - std::pow(spec.beta2, static_cast<double>(step));
    b1 = static_cast<C>(spec.beta1);
    b2 = static_cast<C>(spec.beta2);
    one_minus_b1 = static_cast<C>(1.0 - spec.beta1);
    one_minus_b2 = static_cast<C>(1.0 - spec.beta2);
    step_size = static_cast<C>(spec.learning_rate / c1);
    inv_sqrt_c2 = static_cast<C>(1.0 / std::sqrt(c2));
    eps = static_cast<C>(spec.epsilon);
    coupled_decay = static_cast<C>(decoupled ? 0.0 : spec.weight_decay);
    shrink = static_cast<C>(decoupled ? 1.0 - spec.learning_rate * spec.weight_decay : 1.0);
  }

  // SGD with momentum (and Nesterov), the L2 term coupled_decay * w added to the gradient.
  void sgd_update(C& w, C g, C& velocity) const {
    const C gi = g * scale + coupled_decay * w;
    const C v = momentum * velocity - lr * gi;
    velocity = v;
    w += nesterov ? momentum * v - lr * gi : v;
  }
  void adam_update(C& w, C g, C& m, C& v) const {
    const C wi = w * shrink;
    const C gi = g * scale + coupled_decay * w;
    m = b1 * m + one_minus_b1 * gi;
    v = b2 * v + one_minus_b2 * gi * gi;
    w = wi - step_size * m / (std::sqrt(v) * inv_sqrt_c2 + eps);
  }
};

template <typename T>
void apply_optimizer(const OptimizerConstants<double>& k, std::span<T> weights,
                     std::span<const T> gradient, std::span<T> slot_a, std::span<T> slot_b) {
  for (std::size_t i = 0; i < weights.size(); ++i) {
    double w = weights[i];
    double a = slot_a[i];
    if (k.sgd) {
      k.sgd_update(w, static_cast<double>(gradient[i]), a);
    } else {
      double b = slot_b[i];
      k.adam_update(w, static_cast<double>(gradient[i]), a, b);
      slot_b[i] = static_cast<T>(b);
    }
    slot_a[i] = static_cast<T>(a);
    weights[i] = static_cast<T>(w);
  }
}

template <typename T>
void apply_optimizer(const OptimizerSpec& spec, std::int64_t step, double gradient_scale,
                     std::span<T> weights, std::span<const T> gradient, std::span<T> slot_a,
                     std::span<T> slot_b) {
  apply_optimizer<T>(OptimizerConstants<double>(spec, step, gradient_scale), weights, gradient,
                     slot_a, slot_b);
}

}  // namespace onnxforge
