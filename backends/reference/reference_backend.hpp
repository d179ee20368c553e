// The reference backend: naive, double-accumulating, obviously right; the test oracle.
#pragma once

#include <memory>

#include "backends/backend.hpp"

namespace onnxforge {

std::unique_ptr<Backend> make_reference_backend();

}  // namespace onnxforge
