// cuBLAS, loaded on first use. Linking libcublas (and through it the 540 MB libcublasLt) makes
// every process that links the backends pay ~0.2 s of CPU at start-up, GPU or not (measured:
// 26k page faults from its relocations); test binaries start hundreds of times. So the backend
// dlopens libcublas.so.<major of the headers> when the first Program is compiled and calls it
// through this table; the headers still type every entry point.
#pragma once

#include <cublas_v2.h>

namespace onnxforge::cudnn {

struct CublasApi {
  decltype(&::cublasCreate_v2) create = nullptr;
  decltype(&::cublasDestroy_v2) destroy = nullptr;
  decltype(&::cublasSetStream_v2) set_stream = nullptr;
  decltype(&::cublasSetMathMode) set_math_mode = nullptr;
  decltype(&::cublasSgemm_v2) sgemm = nullptr;
  decltype(&::cublasSgemv_v2) sgemv = nullptr;
  decltype(&::cublasGetStatusName) status_name = nullptr;
  decltype(&::cublasGetStatusString) status_string = nullptr;
  decltype(&::cublasGetProperty) get_property = nullptr;
};

// The loaded table; throws Error naming the library and dlerror() when it cannot be loaded.
const CublasApi& cublas_api();

}  // namespace onnxforge::cudnn
