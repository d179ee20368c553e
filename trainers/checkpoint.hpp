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

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

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

// The trailing checksum: FNV-1a (64-bit) of every byte before it.
std::uint64_t checkpoint_checksum(std::string_view bytes);

// A count read from a checkpoint's JSON: `value` if it is a whole number in [0, max], else
// nothing (a float, a negative, a string...). nlohmann's get<integer>() would cast a float with
// no range check, undefined behaviour for 1e30 (found by the checkpoint fuzz target).
std::optional<std::uint64_t> json_count(const nlohmann::json& value, std::uint64_t max);
// How an error names a JSON value: the number itself, else its type ("a string").
std::string describe_json(const nlohmann::json& value);

}  // namespace onnxforge::train
