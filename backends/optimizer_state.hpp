// Reading Program::optimizer_state() maps back, for backends that keep two slots per trainable
// parameter (slot a: "m" or "velocity", slot b: "v") and the step count under "step".
#pragma once
#include <cstdint>
#include <string>

#include "backends/backend.hpp"
#include "core/error.hpp"

namespace onnxforge {

// The "step" entry, stored as i64 (or any dtype holding the count).
inline std::int64_t optimizer_step(const Tensor& t) {
  return static_cast<std::int64_t>(t.dtype() == DType::i64 ? t.data<std::int64_t>()[0]
                                                           : t.value(0));
}

// A "<param>/<slot>" key; throws naming the backend and the key when it is neither.
struct OptimizerSlotKey {
  std::string parameter;
  bool second = false;                                   // slot b ("v")
  OptimizerSpec::Kind kind = OptimizerSpec::Kind::adam;  // sgd for "velocity"
};

inline OptimizerSlotKey parse_optimizer_slot_key(const char* backend, const std::string& key) {
  const auto slash = key.rfind('/');
  if (slash == std::string::npos) fail("{} backend: unknown optimizer state '{}'", backend, key);
  const std::string slot = key.substr(slash + 1);
  if (slot != "m" && slot != "v" && slot != "velocity") {
    fail("{} backend: unknown optimizer slot '{}' (m, v, velocity)", backend, key);
  }
  return {key.substr(0, slash), slot == "v",
          slot == "velocity" ? OptimizerSpec::Kind::sgd : OptimizerSpec::Kind::adam};
}

}  // namespace onnxforge
