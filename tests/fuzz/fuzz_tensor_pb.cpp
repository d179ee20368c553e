// Fuzz target: the TensorProto reader (importers/tensor_io.hpp read_tensor_pb), fed whole .pb
// files. The file lies in a folder that also holds a small external-data file, a subfolder and a
// symlink leading out, so that the external-data rules (relative, no '..', no escaping symlink,
// offset/length inside the file) are reachable from the input.
#include <cstdint>
#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "importers/tensor_io.hpp"
#include "tests/fuzz/fuzz_util.hpp"

namespace {

void prepare_folder() {
  namespace fs = std::filesystem;
  static bool done = false;
  if (done) return;
  done = true;
  const auto dir = onnxforge::fuzz::scratch_dir();
  std::string bytes(4096, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + 1);
  std::ofstream(dir / "weights.bin", std::ios::binary) << bytes;
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "sub" / "w.bin", std::ios::binary) << bytes.substr(0, 64);
  std::error_code ec;
  fs::create_symlink("/etc/hostname", dir / "escape.bin", ec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  prepare_folder();
  const auto path = onnxforge::fuzz::write_scratch("input.pb", data, size);
  try {
    (void)onnxforge::read_tensor_pb(path.string());
  } catch (const onnxforge::Error&) {
  }
  return 0;
}
