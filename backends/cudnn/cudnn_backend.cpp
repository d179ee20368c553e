#include "backends/cudnn/cudnn_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <fmt/format.h>

#include "backends/cudnn/cublas_loader.hpp"
#include "backends/cudnn/lower.hpp"
#include "backends/cudnn/plan.hpp"
#include "backends/cudnn/program.hpp"
#include "core/error.hpp"

namespace onnxforge {

namespace cudnn {

bool gpu_available(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) {
      *why = fmt::format("no CUDA device: cudaGetDeviceCount failed with {} ({})",
                         cudaGetErrorName(status), cudaGetErrorString(status));
    }
    cudaGetLastError();  // clear the sticky-free error state for later calls
    return false;
  }
  if (count == 0) {
    if (why) *why = "no CUDA device: cudaGetDeviceCount found 0 GPUs";
    return false;
  }
  return true;
}

std::string device_description() {
  std::string why;
  if (!gpu_available(&why)) return why;
  int device = 0;
  cudaDeviceProp props{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&props, device) != cudaSuccess) {
    return "a CUDA device whose properties cannot be read";
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::string cublas = "not loadable";
  try {
    const auto& api = cublas_api();
    int major = 0, minor = 0, patch = 0;
    api.get_property(MAJOR_VERSION, &major);
    api.get_property(MINOR_VERSION, &minor);
    api.get_property(PATCH_LEVEL, &patch);
    cublas = fmt::format("{}.{}.{}", major, minor, patch);
  } catch (const Error& e) {
    cublas = e.what();
  }
  return fmt::format("{} (sm_{}{}, {:.1f} GiB), driver {}.{}, runtime {}.{}, cuDNN {}, cuBLAS {}",
                     props.name, props.major, props.minor,
                     static_cast<double>(props.totalGlobalMem) / (1u << 30), driver / 1000,
                     (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10, cudnnGetVersion(),
                     cublas);
}

}  // namespace cudnn

namespace {

class CudnnBackend final : public Backend {
 public:
  std::string name() const override { return "cudnn"; }

  bool available(std::string* why) const override { return cudnn::gpu_available(why); }

  // The op's answer from the table, then the node's dtypes, rank and size (plan.cpp).
  Support supports(const Graph& graph, const Node& node,
                   const CompileOptions& options) const override {
    if (const auto op = find_op(node.op)) {
      if (auto s = cudnn::op_table().supports(*op); !s.ok) return s;
    }
    return cudnn::node_support(graph, node, options);
  }

  OpCoverage coverage(OpId op) const override { return cudnn::op_table().coverage(op); }

  std::unique_ptr<Program> build(const Graph& graph, const CompileOptions& options) const override {
    return std::make_unique<cudnn::CudnnProgram>(graph, options);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cudnn_backend() { return std::make_unique<CudnnBackend>(); }

}  // namespace onnxforge
