// checkpoint_compare A.ckpt B.ckpt TOLERANCE: the parameters of two checkpoints, tensor by tensor,
// as the relative L2 difference |a - b| / |b| (|a - b| when |b| is 0). Prints the largest and
// exits 1 when it exceeds TOLERANCE or the two hold different tensors; a helper of the MPI tests.
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>

#include "trainers/checkpoint.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: checkpoint_compare A.ckpt B.ckpt TOLERANCE\n");
    return 2;
  }
  try {
    const auto a = onnxforge::train::load_checkpoint(argv[1]);
    const auto b = onnxforge::train::load_checkpoint(argv[2]);
    const double tolerance = std::stod(argv[3]);
    if (a.parameters.size() != b.parameters.size() || a.parameters.empty()) {
      std::fprintf(stderr, "checkpoint_compare: %zu against %zu parameters\n", a.parameters.size(),
                   b.parameters.size());
      return 1;
    }
    double worst = 0.0;
    std::string worst_name;
    for (const auto& [name, ta] : a.parameters) {
      const auto it = b.parameters.find(name);
      if (it == b.parameters.end() || it->second.shape() != ta.shape()) {
        std::fprintf(stderr, "checkpoint_compare: '%s' missing or of another shape in %s\n",
                     name.c_str(), argv[2]);
        return 1;
      }
      const auto va = ta.data<float>();
      const auto vb = it->second.data<float>();
      double diff = 0.0, norm = 0.0;
      for (std::size_t i = 0; i < va.size(); ++i) {
        diff += (static_cast<double>(va[i]) - vb[i]) * (static_cast<double>(va[i]) - vb[i]);
        norm += static_cast<double>(vb[i]) * vb[i];
      }
      const double relative = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
      if (!(relative <= worst)) {
        worst = relative;
        worst_name = name;
      }
    }
    const int step_a = a.state.value("next_epoch", -1), step_b = b.state.value("next_epoch", -1);
    std::printf(
        "checkpoint_compare: %zu tensors, largest relative difference %.3g (%s), epochs %d %d\n",
        a.parameters.size(), worst, worst_name.c_str(), step_a, step_b);
    return worst <= tolerance && step_a == step_b ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_compare: %s\n", e.what());
    return 1;
  }
}
