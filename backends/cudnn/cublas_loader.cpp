#include "backends/cudnn/cublas_loader.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>
#include <string>

#include "core/error.hpp"

namespace onnxforge::cudnn {

namespace {

template <typename Function>
void resolve(void* library, const char* name, Function& out, const std::string& path) {
  out = reinterpret_cast<Function>(dlsym(library, name));
  if (!out) fail("cudnn backend: {} has no symbol {} ({})", path, name, dlerror());
}

CublasApi load() {
  // The soname matching the headers compiled against, then the toolkit folder found by CMake.
  const std::string soname = fmt::format("libcublas.so.{}", CUBLAS_VER_MAJOR);
  std::string path = soname;
  void* library = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef ONNXFORGE_CUDA_LIBRARY_DIR
  if (!library) {
    path = std::string(ONNXFORGE_CUDA_LIBRARY_DIR) + "/" + soname;
    library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  }
#endif
  if (!library) fail("cudnn backend: cannot load cuBLAS ({}): {}", soname, dlerror());
  CublasApi api;
  resolve(library, "cublasCreate_v2", api.create, path);
  resolve(library, "cublasDestroy_v2", api.destroy, path);
  resolve(library, "cublasSetStream_v2", api.set_stream, path);
  resolve(library, "cublasSetMathMode", api.set_math_mode, path);
  resolve(library, "cublasSgemm_v2", api.sgemm, path);
  resolve(library, "cublasSgemv_v2", api.sgemv, path);
  resolve(library, "cublasGetStatusName", api.status_name, path);
  resolve(library, "cublasGetStatusString", api.status_string, path);
  resolve(library, "cublasGetProperty", api.get_property, path);
  return api;  // the library stays loaded for the life of the process
}

}  // namespace

const CublasApi& cublas_api() {
  static std::once_flag once;
  static CublasApi api;
  std::call_once(once, [] { api = load(); });
  return api;
}

}  // namespace onnxforge::cudnn
