// Fuzz target: the checkpoint reader (trainers/checkpoint.hpp decode_checkpoint), the bytes a
// --resume reads. A random change almost never survives the trailing FNV-1a checksum, which would
// leave the header and tensor table unexplored; so inputs whose last byte is even get their last
// 8 bytes replaced by the checksum of the rest (the checksum check itself is fuzzed by the odd
// ones). A checkpoint that decodes must encode and decode back to the same tensors and state.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "trainers/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace onnxforge;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= 8 && data[size - 1] % 2 == 0) {
    const std::uint64_t sum =
        train::checkpoint_checksum(std::string_view(bytes).substr(0, size - 8));
    std::memcpy(bytes.data() + size - 8, &sum, 8);
  }
  train::Checkpoint checkpoint;
  try {
    checkpoint = train::decode_checkpoint(bytes, "fuzz.ckpt");
  } catch (const Error&) {
    return 0;
  }
  const auto again = train::decode_checkpoint(train::encode_checkpoint(checkpoint), "again.ckpt");
  if (again.parameters != checkpoint.parameters || again.optimizer != checkpoint.optimizer ||
      again.state.dump() != checkpoint.state.dump()) {
    std::abort();
  }
  return 0;
}
