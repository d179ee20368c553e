// Fuzz target: the .npy reader (importers/tensor_io.hpp read_npy), fed whole files. A tensor that
// reads back must round-trip through write_npy unchanged.
#include <cstdint>
#include <cstdlib>

#include "core/error.hpp"
#include "importers/tensor_io.hpp"
#include "tests/fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace onnxforge;
  const auto path = fuzz::write_scratch("input.npy", data, size);
  Tensor tensor;
  try {
    tensor = read_npy(path.string());
  } catch (const Error&) {
    return 0;
  }
  const auto again = fuzz::scratch_dir() / "again.npy";
  write_npy(again.string(), tensor);
  const Tensor back = read_npy(again.string());
  // i4 widens to i64 on read, so compare what was read with what it reads back as.
  if (!(back == tensor)) std::abort();
  return 0;
}
