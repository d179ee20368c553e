// The bookkeeping every Program does at the edges of the contract, written once: the graph copy,
// the trainable parameters in graph order, the name and shape checks of set_input / parameter /
// gradient / optimizer state (with their error messages, prefixed "<backend> backend: "), the
// optimizer step counter, the optimizer-state keys and slot layout ("<param>/velocity" for sgd,
// "<param>/m" and "<param>/v" for adam and adamw, "step"), the gradient norm over the trainable
// parameters and the update driver. A backend supplies the storage: small hooks that read or
// write one host tensor from or to its buffers and run its own optimizer kernel per parameter.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "core/error.hpp"

namespace onnxforge {

// One optimizer step as the update driver hands it to a backend: the constants computed once per
// step (in double for host loops in double, in float for float kernels).
struct UpdateStep {
  const OptimizerSpec& spec;
  std::int64_t step = 0;  // counts from 1
  double gradient_scale = 1.0;
  OptimizerConstants<double> constants;
  OptimizerConstants<float> constants_f32;
  bool adam() const { return spec.kind != OptimizerSpec::Kind::sgd; }
};

class ProgramBase : public Program {
 public:
  // Checks the name (an input of the graph) and the shape, then write_input().
  void set_input(const std::string& name, const Tensor& value) final;
  // Needs a training Program and a trainable parameter (or an input with input_gradients).
  Tensor gradient(const std::string& name) const final;
  void set_gradient(const std::string& name, const Tensor& value) final;
  double gradient_norm() const final;
  // Counts the step, computes its constants once, then update_parameters().
  void update(const OptimizerSpec& spec, double gradient_scale = 1.0) final;
  Tensor parameter(const std::string& name) const final;
  void set_parameter(const std::string& name, const Tensor& value) final;
  std::map<std::string, Tensor> optimizer_state() const final;
  void set_optimizer_state(const std::map<std::string, Tensor>& state) final;
  const Graph& graph() const final { return graph_; }

  const CompileOptions& options() const { return options_; }
  // Optimizer steps taken (or restored by set_optimizer_state).
  std::int64_t step() const { return step_; }
  // Trainable parameters, in graph order.
  const std::vector<std::string>& trainable_parameters() const { return trainable_; }

 protected:
  // `backend` names the backend in error messages ("onednn" -> "onednn backend: ...").
  ProgramBase(const Graph& graph, const CompileOptions& options, std::string backend);

  const std::string& backend_name() const { return backend_; }
  // The entry of `name` in a backend's own value table (a map from value name to its Value type);
  // throws "<backend> backend: '<name>' is not a value of the graph" otherwise.
  template <typename Table>
  auto& value_in(Table& values, const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end()) fail("{} backend: '{}' is not a value of the graph", backend_, name);
    return it->second;
  }
  // Where backward can start: the loss, the graph outputs and the kept values (each can be seeded).
  std::vector<std::string> backward_roots() const;
  // Throws "<backend> backend: <what> needs a Program compiled for training" without training.
  void require_training(const char* what) const;
  // The initializer of a trainable parameter; throws naming it otherwise.
  const Initializer& trainable_parameter(const std::string& name) const;
  // Throws unless `value` suits input `name`: i64 for an i64 input, floating otherwise.
  void check_input_dtype(const std::string& name, const Tensor& value) const;

  // ---- storage hooks (names and shapes are checked before they are called) ----
  virtual void write_input(const std::string& name, const Tensor& value) = 0;
  virtual Tensor read_parameter(const std::string& name) const = 0;
  virtual void write_parameter(const std::string& name, const Tensor& value) = 0;
  // The gradient of a trainable parameter (or an input), zeros when none was computed.
  virtual Tensor read_gradient(const std::string& name) const = 0;
  virtual void write_gradient(const std::string& name, const Tensor& value) = 0;
  // The sum of squares of one trainable parameter's gradient (0 when it has none), and of all of
  // them (by default the sum of the former over trainable_parameters()).
  virtual double gradient_sum_of_squares(const std::string& name) const = 0;
  virtual double sum_of_gradient_squares() const;
  // One optimizer step on one trainable parameter: its slots (a: velocity or m, b: v for adam)
  // are created zero-filled on first use; and on all of them (by default the former in order).
  virtual void update_parameter(const std::string& name, const UpdateStep& step) = 0;
  virtual void update_parameters(const UpdateStep& step);
  // An optimizer slot of a trainable parameter as f32 in the parameter's shape, or nothing
  // before it exists; write_optimizer_slot gets an f32 tensor of that shape.
  virtual std::optional<Tensor> read_optimizer_slot(const std::string& name, bool second) const = 0;
  virtual void write_optimizer_slot(const std::string& name, bool second, const Tensor& value) = 0;

  Graph graph_;
  CompileOptions options_;

 private:
  std::string backend_;
  std::vector<std::string> trainable_;
  std::int64_t step_ = 0;
  // The optimizer whose slots are held (by the last update or set_optimizer_state).
  std::optional<OptimizerSpec::Kind> slot_kind_;
};

}  // namespace onnxforge
