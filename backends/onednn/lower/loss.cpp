// Losses: BinaryCrossEntropyWithLogits and SoftmaxCrossEntropy, OpenMP loops on plain layouts
// (the mean over elements or rows, its gradient in backward).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"

namespace onnxforge::onednn {

namespace {

void lower_bce(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string t = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const double wp = attr_float(n, "weight_positive");
  const double wn = attr_float(n, "weight_negative");
  memory xm = p.use(x, plain_desc(xs), plan);
  memory tm = p.use(t, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc({}));
  p.add(plan, fmt::format("{}: binary cross-entropy with logits (loop)", n.name), {xm, tm, ym},
        [xm, tm, ym, wp, wn]() {
          const float* logits = floats(xm);
          const float* labels = floats(tm);
          const auto count = static_cast<std::int64_t>(float_count(xm));
          double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) if (count > kParallelThreshold)
          for (std::int64_t i = 0; i < count; ++i) {
            const double z = logits[i];
            const double label = labels[i];
            // Class-weighted; max(z,0) - z*label + log(1 + exp(-|z|)) never overflows.
            const double weight = label * wp + (1.0 - label) * wn;
            sum += weight * (std::max(z, 0.0) - z * label + std::log1p(std::exp(-std::abs(z))));
          }
          *floats(ym) = static_cast<float>(sum / static_cast<double>(count));
        });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, xm, tm, wp, wn]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc({}));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: binary cross-entropy backward (loop)", n.name),
          {dy, dx, xm, tm}, [dy, dx, xm, tm, wp, wn]() {
            const float* logits = floats(xm);
            const float* labels = floats(tm);
            float* g = floats(dx);
            const auto count = static_cast<std::int64_t>(float_count(xm));
            const double scale = static_cast<double>(*floats(dy)) / static_cast<double>(count);
#pragma omp parallel for if (count > kParallelThreshold)
            for (std::int64_t i = 0; i < count; ++i) {
              const double z = logits[i];
              const double s =
                  z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
              const double label = labels[i];
              const double weight = label * wp + (1.0 - label) * wn;
              g[i] = static_cast<float>(scale * weight * (s - label));
            }
          });
    p.finish(sink);
  });
}

void lower_softmax_ce(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string t = n.inputs[1];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const std::int64_t rows = xs[0];
  const std::int64_t classes = xs[1];
  memory xm = p.use(x, plain_desc(xs), plan);
  memory ym = p.define(y, plain_desc({}));
  const std::int64_t* labels = p.value(t).ints.data();
  const std::string node_name = n.name;
  p.add(plan, fmt::format("{}: softmax cross-entropy (loop)", n.name), {xm, ym},
        [xm, ym, labels, rows, classes, node_name]() {
          const float* logits = floats(xm);
          double sum = 0.0;
          for (std::int64_t r = 0; r < rows; ++r) {
            const float* row = logits + r * classes;
            const std::int64_t label = labels[r];
            if (label < 0 || label >= classes) {
              fail("node '{}' (SoftmaxCrossEntropy): label {} of row {} is outside [0, {})",
                   node_name, label, r, classes);
            }
            double top = row[0];
            for (std::int64_t k = 1; k < classes; ++k) top = std::max(top, double{row[k]});
            double total = 0.0;
            for (std::int64_t k = 0; k < classes; ++k) total += std::exp(row[k] - top);
            sum += top + std::log(total) - row[label];
          }
          *floats(ym) = static_cast<float>(sum / static_cast<double>(rows));
        });
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, xm, labels, rows, classes]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    memory dy = p.gradient_in(y, plain_desc({}));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    memory dx = sink.mem;
    p.add(Plan::backward, fmt::format("{}: softmax cross-entropy backward (loop)", n.name),
          {dy, dx, xm}, [dy, dx, xm, labels, rows, classes]() {
            const float* logits = floats(xm);
            float* g = floats(dx);
            const double scale = static_cast<double>(*floats(dy)) / static_cast<double>(rows);
            for (std::int64_t r = 0; r < rows; ++r) {
              const float* row = logits + r * classes;
              double top = row[0];
              for (std::int64_t k = 1; k < classes; ++k) top = std::max(top, double{row[k]});
              double total = 0.0;
              for (std::int64_t k = 0; k < classes; ++k) total += std::exp(row[k] - top);
              for (std::int64_t k = 0; k < classes; ++k) {
                const double prob = std::exp(row[k] - top) / total;
                g[r * classes + k] =
                    static_cast<float>(scale * (prob - (k == labels[r] ? 1.0 : 0.0)));
              }
            }
          });
    p.finish(sink);
  });
}

}  // namespace

void add_loss_lowerings(LoweringTable& table) {
  table.lower(OpId::BinaryCrossEntropyWithLogits, lower_bce, {.backward = true});
  table.lower(OpId::SoftmaxCrossEntropy, lower_softmax_ce,
              {.backward = true, .note = "its labels must be a graph input or an initializer"});
}

}  // namespace onnxforge::onednn
