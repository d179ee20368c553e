// The oneDNN CPU backend: compiles a Graph into oneDNN primitives (created once per Program) plus
// a few vectorised OpenMP loops for the ops without a natural primitive (dropout, losses) and
// for the optimizer update, which runs in place on the parameters, and loops for the broadcasting
// arithmetic oneDNN 2.6's binary primitive has no kernel for.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.hpp"

namespace onnxforge {

std::unique_ptr<Backend> make_onednn_backend();

namespace onednn {

// Accumulated wall time of one step of a Program's plans (a primitive or a loop).
struct StepTime {
  std::string plan;   // "inference", "training", "backward", "weights", "update"
  std::string label;  // "conv2d: convolution (jit:avx2) src nChw8c"
  double seconds = 0.0;
  std::int64_t calls = 0;
};

// Per-step timing of a Program compiled by the oneDNN backend (waits after every step while on).
// Throws Error for a Program of another backend.
void set_profiling(Program& program, bool on);
std::vector<StepTime> step_times(const Program& program);

// The plans of a Program, one line per step: what runs, its implementation and layouts; then its
// memory (memory_summary).
std::string describe(const Program& program);
// One line: the bytes of the buffers that live across plan runs, and of the arena in which the
// others (activations, their gradients, temporaries) share bytes when never live together.
std::string memory_summary(const Program& program);

// Tests of the guard bytes (ONNXFORGE_GUARD_BYTES=1): overwrites the first byte after the
// largest guarded buffer, as a step writing one byte too far would; false when none is guarded.
bool damage_guard_bytes(Program& program);

}  // namespace onednn
}  // namespace onnxforge
