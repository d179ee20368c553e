#include "trainers/checkpoint.hpp"

#include <cstring>
#include <limits>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "eval/io.hpp"

namespace onnxforge::train {

namespace {

constexpr char kMagic[8] = {'O', 'F', 'C', 'K', 'P', 'T', '0', '1'};
constexpr std::uint64_t kMaxHeader = 64ull << 20;

void put_u64(std::string& out, std::uint64_t v) {
  char bytes[8];
  std::memcpy(bytes, &v, 8);
  out.append(bytes, 8);
}

std::uint64_t get_u64(const std::string& in, std::size_t at) {
  std::uint64_t v;
  std::memcpy(&v, in.data() + at, 8);
  return v;
}

// A size, offset or dimension from the header, at most 2^63-1.
std::uint64_t whole_number(const nlohmann::json& value, const std::string& where,
                           const std::string& tensor, const char* what) {
  const auto n = json_count(value, std::numeric_limits<std::int64_t>::max());
  if (!n) {
    fail("{}: tensor '{}': {} must be a whole number from 0 to 2^63-1, not {}", where, tensor, what,
         describe_json(value));
  }
  return *n;
}

}  // namespace

std::uint64_t checkpoint_checksum(std::string_view bytes) { return fnv1a64(bytes); }

std::optional<std::uint64_t> json_count(const nlohmann::json& value, std::uint64_t max) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > max) return std::nullopt;
  return value.get<std::uint64_t>();
}

std::string describe_json(const nlohmann::json& value) {
  return value.is_number() ? value.dump() : "a " + std::string(value.type_name());
}

std::string encode_checkpoint(const Checkpoint& checkpoint) {
  nlohmann::json header;
  header["format"] = "onnxforge checkpoint";
  header["version"] = 1;
  header["state"] = checkpoint.state;
  header["tensors"] = nlohmann::json::array();
  std::string blob;
  for (const auto* group : {&checkpoint.parameters, &checkpoint.optimizer}) {
    for (const auto& [name, tensor] : *group) {
      header["tensors"].push_back(
          {{"group", group == &checkpoint.parameters ? "parameters" : "optimizer"},
           {"name", name},
           {"dtype", std::string(to_string(tensor.dtype()))},
           {"shape", tensor.shape()},
           {"offset", blob.size()},
           {"bytes", tensor.byte_size()}});
      blob.append(reinterpret_cast<const char*>(tensor.raw()), tensor.byte_size());
    }
  }
  const std::string json = header.dump();
  std::string file(kMagic, 8);
  put_u64(file, json.size());
  file += json;
  file += blob;
  put_u64(file, checkpoint_checksum(file));
  return file;
}

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  eval::write_file_atomic(path, encode_checkpoint(checkpoint));
}

std::string read_checkpoint_bytes(const std::filesystem::path& path) {
  auto bytes = try_read_file(path);
  if (!bytes) fail("{}: checkpoint not found or unreadable", path.string());
  return std::move(*bytes);
}

Checkpoint load_checkpoint(const std::filesystem::path& path) {
  return decode_checkpoint(read_checkpoint_bytes(path), path.string());
}

Checkpoint decode_checkpoint(const std::string& file, const std::string& where) {
  if (file.size() < 24 || std::memcmp(file.data(), kMagic, 8) != 0) {
    fail("{}: not an onnxforge checkpoint (bad magic or too short)", where);
  }
  if (get_u64(file, file.size() - 8) !=
      checkpoint_checksum(std::string_view(file).substr(0, file.size() - 8))) {
    fail("{}: checkpoint is corrupted or truncated (checksum mismatch); use an earlier one", where);
  }
  const std::uint64_t header_size = get_u64(file, 8);
  if (header_size > kMaxHeader || 16 + header_size > file.size() - 8) {
    fail("{}: checkpoint header size {} is invalid", where, header_size);
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.substr(16, header_size));
  } catch (const std::exception& e) {
    fail("{}: checkpoint header is not valid JSON: {}", where, e.what());
  }
  Checkpoint checkpoint;
  const std::size_t blob_begin = 16 + header_size;
  const std::size_t blob_size = file.size() - 8 - blob_begin;
  try {
    checkpoint.state = header.at("state");
    for (const auto& t : header.at("tensors")) {
      const auto name = t.at("name").get<std::string>();
      const auto offset = whole_number(t.at("offset"), where, name, "offset");
      const auto bytes = whole_number(t.at("bytes"), where, name, "bytes");
      if (!t.at("shape").is_array()) fail("{}: tensor '{}': shape is not a list", where, name);
      Shape shape;
      for (const auto& d : t.at("shape")) {
        shape.push_back(static_cast<std::int64_t>(whole_number(d, where, name, "each dimension")));
      }
      DType dtype = DType::f32;
      try {
        dtype = parse_dtype(t.at("dtype").get<std::string>());
      } catch (const Error& e) {
        fail("{}: tensor '{}': {}", where, name, e.what());
      }
      // The size the header declares must match the bytes there before anything is allocated.
      std::uint64_t needed = size_of(dtype);
      for (const auto d : shape) {
        if (d != 0 &&
            needed > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d)) {
          fail("{}: tensor '{}' has an invalid shape {}", where, name, to_string(shape));
        }
        needed *= static_cast<std::uint64_t>(d);
      }
      if (bytes != needed || offset > blob_size || bytes > blob_size - offset) {
        fail("{}: tensor '{}' has an inconsistent size or offset", where, name);
      }
      Tensor tensor(dtype, shape);
      if (bytes > 0) std::memcpy(tensor.raw(), file.data() + blob_begin + offset, bytes);
      auto& group = t.at("group") == "parameters" ? checkpoint.parameters : checkpoint.optimizer;
      group[name] = std::move(tensor);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: checkpoint header is malformed: {}", where, e.what());
  }
  return checkpoint;
}

}  // namespace onnxforge::train
