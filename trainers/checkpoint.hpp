// Checkpoints: every parameter (trainable, frozen, batch-norm statistics), the optimizer state
// and the trainer's state (epoch, best metric, history, schedule) in one file, written
// atomically (temporary file, fsync, rename): a process killed at any moment leaves the previous
// checkpoint loadable.
//
// Format ("onnxforge checkpoint", version 1), little-endian:
//   magic "OFCKPT01" | u64 header length | JSON header | tensor bytes | u64 FNV-1a of all before
// The JSON header lists each tensor (group, name, dtype, shape, offset, bytes) and holds "state".
// A truncated or corrupted file is refused with a message naming it and the problem.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>

#include "graph/tensor.hpp"

namespace onnxforge::train {

struct Checkpoint {
  std::map<std::string, Tensor> parameters;
  std::map<std::string, Tensor> optimizer;
  nlohmann::json state = nlohmann::json::object();
};

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);
Checkpoint load_checkpoint(const std::filesystem::path& path);

// The same bytes in memory (a checkpoint sent from rank 0 to the other ranks): `where` names the
// origin in errors.
std::string encode_checkpoint(const Checkpoint& checkpoint);
std::string read_checkpoint_bytes(const std::filesystem::path& path);
Checkpoint decode_checkpoint(const std::string& bytes, const std::string& where);

}  // namespace onnxforge::train
