// Data-side names for the project's one generator (core/random.hpp).
#pragma once

#include "core/random.hpp"

namespace onnxforge::data {

using onnxforge::derive_seed;
using onnxforge::mix64;
using Rng = onnxforge::Random;

}  // namespace onnxforge::data
