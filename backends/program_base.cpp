#include "backends/program_base.hpp"

#include <cmath>
#include <utility>

#include "backends/optimizer_state.hpp"
#include "core/error.hpp"

namespace onnxforge {

ProgramBase::ProgramBase(const Graph& graph, const CompileOptions& options, std::string backend)
    : graph_(graph), options_(options), backend_(std::move(backend)) {
  for (const auto& init : graph_.initializers) {
    if (init.trainable) trainable_.push_back(init.name);
  }
}

std::vector<std::string> ProgramBase::backward_roots() const {
  std::vector<std::string> roots{options_.loss};
  for (const auto& out : graph_.outputs) roots.push_back(out);
  for (const auto& kept : options_.keep) roots.push_back(kept);
  return roots;
}

void ProgramBase::require_training(const char* what) const {
  if (!options_.training) {
    fail("{} backend: {} needs a Program compiled for training", backend_, what);
  }
}

const Initializer& ProgramBase::trainable_parameter(const std::string& name) const {
  const Initializer* init = graph_.find_initializer(name);
  if (!init || !init->trainable) {
    fail("{} backend: '{}' is not a trainable parameter (gradients exist only for those)", backend_,
         name);
  }
  return *init;
}

void ProgramBase::check_input_dtype(const std::string& name, const Tensor& value) const {
  if (graph_.value(name).dtype == DType::i64) {
    if (value.dtype() != DType::i64) {
      fail("{} backend: input '{}' expects i64 values, got {}", backend_, name,
           to_string(value.dtype()));
    }
  } else if (!is_floating(value.dtype())) {
    fail("{} backend: input '{}' expects floating values, got {}", backend_, name,
         to_string(value.dtype()));
  }
}

void ProgramBase::set_input(const std::string& name, const Tensor& value) {
  if (!graph_.is_input(name)) fail("{} backend: '{}' is not an input of the graph", backend_, name);
  const Shape& expected = graph_.value(name).shape;
  if (value.shape() != expected) {
    fail("{} backend: input '{}' expects shape {}, got {}", backend_, name, to_string(expected),
         to_string(value.shape()));
  }
  write_input(name, value);
}

Tensor ProgramBase::gradient(const std::string& name) const {
  if (!options_.training) {
    fail("{} backend: gradients need a Program compiled for training", backend_);
  }
  const bool input = graph_.is_input(name) && options_.input_gradients;
  if (!input) trainable_parameter(name);
  return read_gradient(name);
}

void ProgramBase::set_gradient(const std::string& name, const Tensor& value) {
  if (!options_.training) {
    fail("{} backend: gradients need a Program compiled for training", backend_);
  }
  const Initializer& init = trainable_parameter(name);
  if (value.shape() != init.value.shape()) {
    fail("{} backend: gradient of '{}' has shape {}, got {}", backend_, name,
         to_string(init.value.shape()), to_string(value.shape()));
  }
  write_gradient(name, value);
}

double ProgramBase::sum_of_gradient_squares() const {
  double sum = 0.0;
  for (const auto& name : trainable_) sum += gradient_sum_of_squares(name);
  return sum;
}

double ProgramBase::gradient_norm() const { return std::sqrt(sum_of_gradient_squares()); }

void ProgramBase::update_parameters(const UpdateStep& step) {
  for (const auto& name : trainable_) update_parameter(name, step);
}

void ProgramBase::update(const OptimizerSpec& spec, double gradient_scale) {
  require_training("update");
  ++step_;
  const UpdateStep step{spec, step_, gradient_scale,
                        OptimizerConstants<double>(spec, step_, gradient_scale),
                        OptimizerConstants<float>(spec, step_, gradient_scale)};
  update_parameters(step);
  slot_kind_ = spec.kind;
}

Tensor ProgramBase::parameter(const std::string& name) const {
  if (!graph_.find_initializer(name)) {
    fail("{} backend: '{}' is not an initializer of the graph", backend_, name);
  }
  return read_parameter(name);
}

void ProgramBase::set_parameter(const std::string& name, const Tensor& value) {
  const Initializer* init = graph_.find_initializer(name);
  if (!init) fail("{} backend: '{}' is not an initializer of the graph", backend_, name);
  if (value.shape() != init->value.shape()) {
    fail("{} backend: parameter '{}' has shape {}, got {}", backend_, name,
         to_string(init->value.shape()), to_string(value.shape()));
  }
  write_parameter(name, value);
}

std::map<std::string, Tensor> ProgramBase::optimizer_state() const {
  std::map<std::string, Tensor> state;
  state["step"] = Tensor::from<std::int64_t>({}, std::vector<std::int64_t>{step_});
  if (!slot_kind_) return state;
  const bool adam = *slot_kind_ != OptimizerSpec::Kind::sgd;
  for (const auto& name : trainable_) {
    if (auto a = read_optimizer_slot(name, false)) {
      state[name + (adam ? "/m" : "/velocity")] = std::move(*a);
    }
    if (!adam) continue;
    if (auto b = read_optimizer_slot(name, true)) state[name + "/v"] = std::move(*b);
  }
  return state;
}

void ProgramBase::set_optimizer_state(const std::map<std::string, Tensor>& state) {
  std::optional<OptimizerSpec::Kind> kind;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      step_ = optimizer_step(t);
      continue;
    }
    const OptimizerSlotKey slot = parse_optimizer_slot_key(backend_.c_str(), key);
    const Initializer& init = trainable_parameter(slot.parameter);
    if (t.shape() != init.value.shape()) {
      fail("{} backend: optimizer state '{}' has shape {}, expected {}", backend_, key,
           to_string(t.shape()), to_string(init.value.shape()));
    }
    write_optimizer_slot(slot.parameter, slot.second,
                         t.dtype() == DType::f32 ? t : t.to(DType::f32));
    kind = slot.kind;
  }
  if (kind) slot_kind_ = kind;
}

}  // namespace onnxforge
