// Element-wise loops of the oneDNN backend: the optimizer update (in place, one pass over the
// parameters, vectorised and OpenMP-parallel), gradient norms and dropout.
#include <cmath>
#include <cstdint>

#include "backends/onednn/program.hpp"

namespace onnxforge::onednn {

void optimizer_step(const OptimizerSpec& spec, std::int64_t step, double gradient_scale, float* w,
                    const float* g, float* slot_a, float* slot_b, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  const float scale = static_cast<float>(gradient_scale);
  const float lr = static_cast<float>(spec.learning_rate);
  const float decay = static_cast<float>(spec.weight_decay);
  if (spec.kind == OptimizerSpec::Kind::sgd) {
    const float momentum = static_cast<float>(spec.momentum);
    const bool nesterov = spec.nesterov;
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < count; ++i) {
      const float gi = g[i] * scale + decay * w[i];
      const float velocity = momentum * slot_a[i] - lr * gi;
      slot_a[i] = velocity;
      w[i] += nesterov ? momentum * velocity - lr * gi : velocity;
    }
    return;
  }
  // Adam / AdamW: w -= lr * (m / c1) / (sqrt(v / c2) + eps), with the corrections folded into
  // two constants.
  const bool decoupled = spec.kind == OptimizerSpec::Kind::adamw;
  const double c1 = 1.0 - std::pow(spec.beta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(spec.beta2, static_cast<double>(step));
  const float b1 = static_cast<float>(spec.beta1);
  const float b2 = static_cast<float>(spec.beta2);
  const float one_minus_b1 = static_cast<float>(1.0 - spec.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - spec.beta2);
  const float step_size = static_cast<float>(spec.learning_rate / c1);
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
  const float eps = static_cast<float>(spec.epsilon);
  const float coupled_decay = decoupled ? 0.f : decay;
  const float shrink = decoupled ? 1.f - lr * decay : 1.f;
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) {
    const float wi = w[i] * shrink;
    const float gi = g[i] * scale + coupled_decay * w[i];
    const float m = b1 * slot_a[i] + one_minus_b1 * gi;
    const float v = b2 * slot_b[i] + one_minus_b2 * gi * gi;
    slot_a[i] = m;
    slot_b[i] = v;
    w[i] = wi - step_size * m / (std::sqrt(v) * inv_sqrt_c2 + eps);
  }
}

double sum_of_squares(const float* x, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
  double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static)
  for (std::int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

namespace {

// splitmix64 of a counter: independent uniform numbers per element, whatever the thread count.
inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

void dropout_forward(const float* x, float* y, float* mask, std::size_t n, double ratio,
                     std::uint64_t seed) {
  const auto count = static_cast<std::int64_t>(n);
  const float keep_scale = static_cast<float>(1.0 / (1.0 - ratio));
  // Drop when the top 24 bits, as a fraction, fall below the ratio.
  const auto threshold = static_cast<std::uint32_t>(ratio * 16777216.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < count; ++i) {
    const auto u = static_cast<std::uint32_t>(mix(seed + static_cast<std::uint64_t>(i)) >> 40);
    const float m = u >= threshold ? keep_scale : 0.f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

void multiply(const float* a, const float* b, float* out, std::size_t n) {
  const auto count = static_cast<std::int64_t>(n);
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < count; ++i) out[i] = a[i] * b[i];
}

}  // namespace onnxforge::onednn
