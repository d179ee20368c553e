// The CUDA/cuDNN backend: the same IR and Program contract as the CPU backends, on one NVIDIA
// GPU. cuDNN runs convolutions (algorithm chosen by cudnnFind*Ex at compile time, one shared
// workspace), pooling, activations, batch normalization and softmax; cuBLAS runs Dense and
// MatMul; the backend's own kernels (kernels.cu) run the rest (losses, optimizer, broadcasting,
// dropout, layout ops). Parameters, gradients, optimizer slots and activations live on the
// device; host <-> device copies happen only in set_input, fetch, gradient / set_gradient,
// parameter / set_parameter and the optimizer state.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.hpp"

namespace onnxforge {

std::unique_ptr<Backend> make_cudnn_backend();

namespace cudnn {

// Whether a CUDA device is visible; `why` (may be null) says why not: the driver's error or a
// count of 0. Never throws.
bool gpu_available(std::string* why);
// "NVIDIA H200 (sm_90, 139.8 GiB), driver 13.0, cuDNN 91900, cuBLAS 130100", or why none.
std::string device_description();

}  // namespace cudnn
}  // namespace onnxforge
