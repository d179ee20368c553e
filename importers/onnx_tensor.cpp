#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstring>
#include <fstream>
#include <limits>

#include "core/error.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge::onnx_io {

namespace fs = std::filesystem;
using TP = onnx::TensorProto;

namespace {

// Bytes per element as stored in raw_data / external data.
std::size_t stored_size(int type) {
  switch (type) {
    case TP::FLOAT:
    case TP::INT32:
    case TP::UINT32:
      return 4;
    case TP::DOUBLE:
    case TP::INT64:
    case TP::UINT64:
      return 8;
    case TP::FLOAT16:
    case TP::BFLOAT16:
    case TP::INT16:
    case TP::UINT16:
      return 2;
    case TP::UINT8:
    case TP::INT8:
    case TP::BOOL:
      return 1;
    default:
      return 0;
  }
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ffu;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Converts `count` stored elements of `type` at `src` into `out` (already sized).
void convert_stored(int type, const std::uint8_t* src, std::int64_t count, Tensor& out) {
  const auto n = static_cast<std::size_t>(count);
  if (n == 0) return;  // an empty tensor has no buffer: memcpy(nullptr, ...) is UB
  auto load = [&](auto tag, std::size_t i) {
    decltype(tag) v;
    std::memcpy(&v, src + i * sizeof v, sizeof v);
    return v;
  };
  switch (type) {
    case TP::FLOAT:
    case TP::DOUBLE:
    case TP::INT64:
    case TP::UINT8:
    case TP::BFLOAT16:
      std::memcpy(out.raw(), src, n * stored_size(type));
      return;
    case TP::BOOL:
      for (std::size_t i = 0; i < n; ++i) out.raw()[i] = src[i] ? 1 : 0;
      return;
    case TP::FLOAT16: {
      auto dst = out.data<float>();
      for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(load(std::uint16_t{}, i));
      return;
    }
    default:
      break;
  }
  auto dst = out.data<std::int64_t>();
  for (std::size_t i = 0; i < n; ++i) {
    switch (type) {
      case TP::INT32:
        dst[i] = load(std::int32_t{}, i);
        break;
      case TP::UINT32:
        dst[i] = load(std::uint32_t{}, i);
        break;
      case TP::INT16:
        dst[i] = load(std::int16_t{}, i);
        break;
      case TP::UINT16:
        dst[i] = load(std::uint16_t{}, i);
        break;
      case TP::INT8:
        dst[i] = load(std::int8_t{}, i);
        break;
      case TP::UINT64: {
        const auto v = load(std::uint64_t{}, i);
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail("uint64 value {} does not fit int64", v);
        }
        dst[i] = static_cast<std::int64_t>(v);
        break;
      }
      default:
        fail("unsupported tensor data type {}", onnx_type_name(type));
    }
  }
}

}  // namespace

std::optional<DType> ir_dtype_of(int type) {
  switch (type) {
    case TP::FLOAT:
    case TP::FLOAT16:
      return DType::f32;
    case TP::DOUBLE:
      return DType::f64;
    case TP::BFLOAT16:
      return DType::bf16;
    case TP::INT64:
    case TP::INT32:
    case TP::INT16:
    case TP::INT8:
    case TP::UINT16:
    case TP::UINT32:
    case TP::UINT64:
      return DType::i64;
    case TP::UINT8:
      return DType::u8;
    case TP::BOOL:
      return DType::boolean;
    default:
      return std::nullopt;
  }
}

int onnx_type_of(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return TP::FLOAT;
    case DType::f64:
      return TP::DOUBLE;
    case DType::bf16:
      return TP::BFLOAT16;
    case DType::i64:
      return TP::INT64;
    case DType::u8:
      return TP::UINT8;
    case DType::boolean:
      return TP::BOOL;
  }
  return TP::UNDEFINED;
}

std::string onnx_type_name(int type) {
  if (TP::DataType_IsValid(type)) return TP::DataType_Name(static_cast<TP::DataType>(type));
  return "data type " + std::to_string(type);
}

fs::path external_file(const std::string& location, const fs::path& model_dir,
                       const std::string& what) {
  if (model_dir.empty()) {
    fail("{}: external data '{}' cannot be read: the model was not loaded from a folder", what,
         location);
  }
  const fs::path relative(location);
  if (location.empty() || relative.is_absolute() || relative.has_root_name() ||
      relative.has_root_directory()) {
    fail("{}: external data location '{}' must be a path relative to the model's folder", what,
         location);
  }
  for (const auto& part : relative) {
    if (part == "..") {
      fail("{}: external data location '{}' leads outside the model's folder ('..' is refused)",
           what, location);
    }
  }
  std::error_code ec;
  const fs::path base = fs::canonical(model_dir, ec);
  if (ec)
    fail("{}: cannot resolve the model folder '{}': {}", what, model_dir.string(), ec.message());
  const fs::path file = fs::canonical(base / relative, ec);
  if (ec) {
    fail("{}: external data file '{}' does not exist or cannot be read ({})", what,
         (base / relative).string(), ec.message());
  }
  auto b = base.begin();
  auto f = file.begin();
  for (; b != base.end(); ++b, ++f) {
    if (f == file.end() || *f != *b) {
      fail(
          "{}: external data location '{}' resolves to '{}', outside the model's folder '{}' "
          "(a symlink leading out is refused)",
          what, location, file.string(), base.string());
    }
  }
  if (!fs::is_regular_file(file)) {
    fail("{}: external data location '{}' is not a regular file", what, location);
  }
  return file;
}

Tensor read_tensor(const TP& proto, const fs::path& model_dir, const std::string& what) {
  const int type = proto.data_type();
  const auto dtype = ir_dtype_of(type);
  if (!dtype || stored_size(type) == 0) {
    fail("{}: tensor data type {} is not supported", what, onnx_type_name(type));
  }
  if (proto.has_segment()) fail("{}: segmented tensors are not supported", what);
  Shape shape;
  std::int64_t count = 1;
  for (const auto d : proto.dims()) {
    if (d < 0)
      fail("{}: negative dimension {} in dims [{}]", what, d, fmt::join(proto.dims(), ","));
    if (d != 0 && count > std::numeric_limits<std::int64_t>::max() / d) {
      fail("{}: dims [{}] overflow 64 bits", what, fmt::join(proto.dims(), ","));
    }
    count *= d;
    shape.push_back(d);
  }
  const auto element = static_cast<std::int64_t>(std::max(stored_size(type), size_of(*dtype)));
  if (count > std::numeric_limits<std::int64_t>::max() / element ||
      count * element > (std::int64_t{1} << 40)) {
    fail("{}: dims [{}] of {} take more than 1 TiB", what, fmt::join(proto.dims(), ","),
         onnx_type_name(type));
  }
  const auto bytes = static_cast<std::size_t>(count) * stored_size(type);

  if (proto.data_location() == TP::EXTERNAL) {
    std::string location;
    std::int64_t offset = 0;
    std::int64_t length = -1;
    for (const auto& entry : proto.external_data()) {
      auto number = [&](const std::string& text) {
        std::size_t used = 0;
        long long v = -1;
        try {
          v = std::stoll(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != text.size() || v < 0) {
          fail("{}: external data {} '{}' is not a non-negative integer", what, entry.key(), text);
        }
        return static_cast<std::int64_t>(v);
      };
      if (entry.key() == "location") {
        location = entry.value();
      } else if (entry.key() == "offset") {
        offset = number(entry.value());
      } else if (entry.key() == "length") {
        length = number(entry.value());
      }
    }
    if (location.empty()) fail("{}: external data without a 'location' entry", what);
    const fs::path file = external_file(location, model_dir, what);
    const auto file_size = static_cast<std::int64_t>(fs::file_size(file));
    if (length < 0) length = file_size - std::min(offset, file_size);
    if (length != static_cast<std::int64_t>(bytes)) {
      fail("{}: external data '{}' holds {} bytes but dims [{}] of {} need {}", what, location,
           length, fmt::join(proto.dims(), ","), onnx_type_name(type), bytes);
    }
    if (offset > file_size || length > file_size - offset) {
      fail("{}: external data '{}' (offset {}, length {}) runs past the end of the {}-byte file",
           what, location, offset, length, file_size);
    }
    std::vector<std::uint8_t> buffer(bytes);
    std::ifstream in(file, std::ios::binary);
    in.seekg(offset);
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(bytes));
    if (!in) fail("{}: cannot read external data '{}'", what, location);
    Tensor t(*dtype, shape);
    convert_stored(type, buffer.data(), count, t);
    return t;
  }

  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != bytes) {
      fail("{}: raw_data holds {} bytes but dims [{}] of {} need {}", what, proto.raw_data().size(),
           fmt::join(proto.dims(), ","), onnx_type_name(type), bytes);
    }
    Tensor t(*dtype, shape);
    convert_stored(type, reinterpret_cast<const std::uint8_t*>(proto.raw_data().data()), count, t);
    return t;
  }

  // Typed fields.
  auto check_count = [&](int have, const char* field) {
    if (have != count) {
      fail("{}: {} holds {} values but dims [{}] need {}", what, field, have,
           fmt::join(proto.dims(), ","), count);
    }
  };
  switch (type) {
    case TP::FLOAT:
      check_count(proto.float_data_size(), "float_data");
      break;
    case TP::DOUBLE:
      check_count(proto.double_data_size(), "double_data");
      break;
    case TP::INT64:
      check_count(proto.int64_data_size(), "int64_data");
      break;
    case TP::UINT32:
    case TP::UINT64:
      check_count(proto.uint64_data_size(), "uint64_data");
      break;
    default:
      check_count(proto.int32_data_size(), "int32_data");
  }
  Tensor t(*dtype, shape);
  const auto n = static_cast<std::size_t>(count);
  switch (type) {
    case TP::FLOAT: {
      auto dst = t.data<float>();
      for (std::size_t i = 0; i < n; ++i) dst[i] = proto.float_data(static_cast<int>(i));
      break;
    }
    case TP::DOUBLE: {
      auto dst = t.data<double>();
      for (std::size_t i = 0; i < n; ++i) dst[i] = proto.double_data(static_cast<int>(i));
      break;
    }
    case TP::INT64: {
      auto dst = t.data<std::int64_t>();
      for (std::size_t i = 0; i < n; ++i) dst[i] = proto.int64_data(static_cast<int>(i));
      break;
    }
    case TP::UINT32:
    case TP::UINT64: {
      auto dst = t.data<std::int64_t>();
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = proto.uint64_data(static_cast<int>(i));
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
          fail("{}: uint64 value {} does not fit int64", what, v);
        }
        dst[i] = static_cast<std::int64_t>(v);
      }
      break;
    }
    default: {
      // int32_data carries INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16 and BFLOAT16.
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = proto.int32_data(static_cast<int>(i));
        switch (type) {
          case TP::UINT8:
          case TP::BOOL:
            t.raw()[i] = static_cast<std::uint8_t>(type == TP::BOOL ? (v != 0) : v);
            break;
          case TP::FLOAT16:
            t.data<float>()[i] = half_to_float(static_cast<std::uint16_t>(v));
            break;
          case TP::BFLOAT16:
            t.data<BFloat16>()[i] = BFloat16{static_cast<std::uint16_t>(v)};
            break;
          default:
            t.data<std::int64_t>()[i] = v;
        }
      }
    }
  }
  return t;
}

void write_tensor(const Tensor& tensor, const std::string& name, TP& proto) {
  proto.set_name(name);
  proto.set_data_type(onnx_type_of(tensor.dtype()));
  for (const auto d : tensor.shape()) proto.add_dims(d);
  proto.set_raw_data(std::string(reinterpret_cast<const char*>(tensor.raw()), tensor.byte_size()));
}

void parse_model(const std::string& bytes, onnx::ModelProto& model, const std::string& what) {
  google::protobuf::io::ArrayInputStream raw(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(std::numeric_limits<int>::max());
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    fail(
        "{}: {} bytes is larger than the 2 GiB protobuf limit; store the weights as external "
        "data",
        what, bytes.size());
  }
  if (!model.ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    fail(
        "{}: cannot parse the ONNX model (the file is truncated, corrupt or not an ONNX "
        "ModelProto)",
        what);
  }
}

}  // namespace onnxforge::onnx_io
