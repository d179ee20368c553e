#include "tests/support/gradient_check.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "backends/backend.hpp"

namespace onnxforge::testing {

namespace {

// Every floating input and initializer in f64, shapes re-inferred.
Graph to_f64(Graph g) {
  for (auto& in : g.inputs) {
    if (is_floating(in.dtype)) in.dtype = DType::f64;
  }
  for (auto& init : g.initializers) {
    if (is_floating(init.value.dtype())) init.value = init.value.to(DType::f64);
  }
  g.validate();
  return g;
}

Tensor as_f64(const Tensor& t) { return is_floating(t.dtype()) ? t.to(DType::f64) : t; }

}  // namespace

GradientCheck check_gradients(const OpCase& c) {
  GradientCheck result;
  Graph g = to_f64(c.graph);
  const std::string out = g.outputs.at(0);
  Random rng(hash_name(c.name, 5));
  std::map<std::string, Tensor> feeds;
  for (const auto& [name, t] : random_feeds(g, rng)) feeds[name] = as_f64(t);
  const Tensor seed = as_f64(random_tensor(g.value(out).shape, rng));

  // Compiled for training (which needs a scalar loss); backward is seeded on the output.
  CompileOptions training{.training = true, .loss = out, .input_gradients = true};
  if (element_count(g.value(out).shape) != 1) {
    g.inputs.push_back({"unused_loss", DType::f64, {}});
    g.validate();
    training.loss = "unused_loss";
    feeds["unused_loss"] = Tensor(DType::f64, {});
  }
  auto program = make_backend("reference")->compile(g, training);
  for (const auto& [name, value] : feeds) program->set_input(name, value);

  auto objective = [&]() {
    program->forward(Mode::training);
    const Tensor y = program->fetch(out);
    double sum = 0;
    for (std::int64_t i = 0; i < y.size(); ++i) sum += y.value(i) * seed.value(i);
    return sum;
  };
  objective();
  program->backward({{out, seed}});

  std::vector<std::string> targets;
  for (const auto& in : c.graph.inputs) {
    if (is_floating(in.dtype) && in.name != "labels") targets.push_back(in.name);
  }
  for (const auto& init : g.initializers) {
    if (init.trainable) targets.push_back(init.name);
  }
  if (targets.empty()) result.failures.push_back("nothing to check: no input or parameter");

  const double h = c.fd_step;
  for (const auto& target : targets) {
    const bool is_input = feeds.count(target) != 0;
    const Tensor base = is_input ? feeds[target] : program->parameter(target);
    const Tensor analytic = program->gradient(target);
    if (analytic.shape() != base.shape()) {
      result.failures.push_back(fmt::format("d/d{}: gradient shape {} for a value of shape {}",
                                            target, to_string(analytic.shape()),
                                            to_string(base.shape())));
      continue;
    }
    const std::int64_t n = base.size();
    const std::int64_t stride = std::max<std::int64_t>(1, n / 48);
    for (std::int64_t i = 0; i < n; i += stride) {
      auto evaluate = [&](double delta) {
        Tensor t = base;
        t.data<double>()[static_cast<std::size_t>(i)] += delta;
        if (is_input) {
          program->set_input(target, t);
        } else {
          program->set_parameter(target, t);
        }
        return objective();
      };
      const double f0 = evaluate(0.0);
      const double fp = evaluate(h), fm = evaluate(-h);
      if (is_input) {
        program->set_input(target, base);
      } else {
        program->set_parameter(target, base);
      }
      const double right = (fp - f0) / h, left = (f0 - fm) / h;
      if (std::abs(right - left) > 1e-3 * std::max(1.0, std::abs(right) + std::abs(left))) {
        ++result.skipped;  // a kink: not differentiable here
        continue;
      }
      const double numeric = (fp - fm) / (2 * h);
      const double a = analytic.value(i);
      const double error = std::abs(a - numeric) / std::max(1.0, std::abs(numeric));
      result.worst = std::max(result.worst, error);
      if (!(error < c.fd_tolerance)) {
        result.failures.push_back(
            fmt::format("d/d{}[{}]: analytic {} numeric {}", target, i, a, numeric));
      }
      ++result.checked;
    }
  }
  return result;
}

}  // namespace onnxforge::testing
