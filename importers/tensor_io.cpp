#include "importers/tensor_io.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include "core/error.hpp"
#include "core/files.hpp"
#include "importers/onnx_proto.hpp"

namespace onnxforge {

namespace fs = std::filesystem;

Tensor read_npy(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    fail("{}: not a .npy file (bad magic)", path);
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0;
  std::size_t start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail("{}: truncated .npy header", path);
    for (int i = 3; i >= 0; --i) {
      header_len =
          (header_len << 8) | static_cast<unsigned char>(bytes[8 + static_cast<std::size_t>(i)]);
    }
    start = 12;
  } else {
    fail("{}: unsupported .npy version {}", path, major);
  }
  if (start + header_len > bytes.size()) fail("{}: truncated .npy header", path);
  const std::string header = bytes.substr(start, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) {
    fail("{}: .npy header has no descr", path);
  }
  const std::string descr = m[1];
  if (std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*True)"))) {
    fail("{}: Fortran-order arrays are not supported (save with np.ascontiguousarray)", path);
  }
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) {
    fail("{}: .npy header has no shape", path);
  }
  Shape shape;
  const std::string dims = m[1];
  std::regex number(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), number);
       it != std::sregex_iterator(); ++it) {
    const auto text = it->str();
    if (text.size() > 15) fail("{}: dimension {} is too large", path, text);
    shape.push_back(std::stoll(text));
  }
  struct Kind {
    const char* descr;
    DType dtype;
    std::size_t size;
  };
  static const Kind kinds[] = {{"<f4", DType::f32, 4}, {"<f8", DType::f64, 8},
                               {"<i8", DType::i64, 8}, {"<i4", DType::i64, 4},
                               {"|u1", DType::u8, 1},  {"|b1", DType::boolean, 1}};
  const Kind* kind = nullptr;
  for (const auto& k : kinds) {
    if (descr == k.descr) kind = &k;
  }
  if (!kind) fail("{}: dtype '{}' is not supported (f4, f8, i8, i4, u1, b1)", path, descr);
  const auto count = element_count(shape);
  const std::size_t data_start = start + header_len;
  if (static_cast<std::uint64_t>(count) > (bytes.size() - data_start) / kind->size ||
      static_cast<std::size_t>(count) * kind->size != bytes.size() - data_start) {
    fail("{}: holds {} data bytes but shape {} of {} needs {}", path, bytes.size() - data_start,
         to_string(shape), descr, static_cast<std::size_t>(count) * kind->size);
  }
  Tensor t(kind->dtype, shape);
  const char* src = bytes.data() + data_start;
  if (descr == "<i4") {
    auto dst = t.data<std::int64_t>();
    for (std::size_t i = 0; i < dst.size(); ++i) {
      std::int32_t v;
      std::memcpy(&v, src + 4 * i, 4);
      dst[i] = v;
    }
  } else if (t.byte_size() > 0) {  // an empty tensor has no buffer: memcpy(nullptr, ...) is UB
    std::memcpy(t.raw(), src, t.byte_size());
  }
  return t;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  std::string descr;
  switch (tensor.dtype()) {
    case DType::f32:
      descr = "<f4";
      break;
    case DType::f64:
      descr = "<f8";
      break;
    case DType::i64:
      descr = "<i8";
      break;
    case DType::u8:
      descr = "|u1";
      break;
    case DType::boolean:
      descr = "|b1";
      break;
    case DType::bf16:
      return write_npy(path, tensor.to(DType::f32));
  }
  std::string shape = fmt::format("{}", fmt::join(tensor.shape(), ", "));
  if (tensor.shape().size() == 1) shape += ",";
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot write", path);
  out.write("\x93NUMPY\x01\x00", 8);
  const auto len = static_cast<std::uint16_t>(header.size());
  const char le[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  out.write(le, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(tensor.raw()),
            static_cast<std::streamsize>(tensor.byte_size()));
  if (!out) fail("{}: cannot write", path);
}

Tensor read_tensor_pb(const std::string& path) {
  const std::string bytes = read_file(path);
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) fail("{}: not a serialized onnx.TensorProto", path);
  try {
    return onnx_io::read_tensor(proto, fs::absolute(path).parent_path(), "tensor");
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
}

Tensor read_tensor_file(const std::string& path) {
  const auto ext = fs::path(path).extension().string();
  if (ext == ".npy") return read_npy(path);
  if (ext == ".pb") return read_tensor_pb(path);
  fail("{}: unknown tensor file type '{}' (use .npy or .pb)", path, ext);
}

}  // namespace onnxforge
