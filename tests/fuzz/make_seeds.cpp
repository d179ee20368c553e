// Writes the generated part of the fuzz seed corpora (scripts/fuzz.sh runs it once per build):
//   OUT/image/      small JPEG (baseline, progressive, gray), PNG (8/16-bit, gray, alpha) and BMP
//                   (24-bit, 8-bit gray) images, a few odd sizes, and truncated copies of each
//   OUT/npy/        every dtype the reader takes, version 1 and 2 headers, 0-d and empty arrays
//   OUT/tensor_pb/  TensorProtos in raw_data, typed fields and external data (the locations the
//                   fuzz target's folder holds, and the refused ones: '..', absolute, symlink)
//   OUT/checkpoint/ checkpoints as training writes them (parameters, Adam state, trainer state),
//                   an empty one, odd dtypes and shapes, and a truncated copy
// The ONNX models and .pb files of libonnx-testdata and configs/*.toml are copied by fuzz.sh.
//   make_seeds OUT
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "importers/tensor_io.hpp"
#include "trainers/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace onnxforge;

namespace {

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

cv::Mat pattern(int width, int height, int type) {
  cv::Mat image(height, width, type);
  cv::randu(image, 0, CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255);
  return image;
}

void images(const fs::path& dir) {
  struct Case {
    const char* name;
    const char* ext;
    cv::Mat image;
    std::vector<int> params;
  };
  const std::vector<Case> cases = {
      {"rgb", ".jpg", pattern(16, 12, CV_8UC3), {}},
      {"progressive", ".jpg", pattern(40, 24, CV_8UC3), {cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
      {"gray", ".jpg", pattern(9, 7, CV_8UC1), {}},
      {"large", ".jpg", pattern(300, 200, CV_8UC3), {cv::IMWRITE_JPEG_QUALITY, 30}},
      {"rgb", ".png", pattern(16, 12, CV_8UC3), {}},
      {"rgba", ".png", pattern(5, 3, CV_8UC4), {}},
      {"gray16", ".png", pattern(7, 5, CV_16UC1), {}},
      {"gray", ".png", pattern(1, 1, CV_8UC1), {}},
      {"rgb", ".bmp", pattern(13, 11, CV_8UC3), {}},
      {"gray", ".bmp", pattern(6, 4, CV_8UC1), {}},
  };
  for (const auto& c : cases) {
    std::vector<std::uint8_t> bytes;
    if (!cv::imencode(c.ext, c.image, bytes, c.params)) {
      std::fprintf(stderr, "make_seeds: cannot encode %s%s\n", c.name, c.ext);
      continue;
    }
    const std::string data(bytes.begin(), bytes.end());
    const std::string stem = std::string(c.name) + "_" + (c.ext + 1);
    write(dir / (stem + c.ext), data);
    write(dir / (stem + "_truncated" + c.ext), data.substr(0, data.size() / 2));
  }
}

void npys(const fs::path& dir) {
  fs::create_directories(dir);
  write_npy((dir / "f32.npy").string(), Tensor::from<float>({2, 3}, {1, 2, 3, 4, 5, 6}));
  write_npy((dir / "f64.npy").string(), Tensor::from<double>({3}, {0.5, -1, 2}));
  write_npy((dir / "i64.npy").string(), Tensor::from<std::int64_t>({1, 2}, {-7, 9}));
  write_npy((dir / "u8.npy").string(), Tensor::from<std::uint8_t>({2, 2}, {0, 1, 2, 255}));
  write_npy((dir / "scalar.npy").string(), Tensor::from<float>({}, {3}));
  write_npy((dir / "empty.npy").string(), Tensor(DType::f32, {0, 4}));
  write_npy((dir / "bool.npy").string(), Tensor(DType::boolean, {3}));
  // Hand-made headers: version 2.0 and int32 (what numpy writes for big headers / int arrays).
  auto npy = [](char major, const std::string& dict, const std::string& data) {
    std::string header = dict;
    const std::size_t prefix = major == 1 ? 10 : 12;
    header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out = std::string("\x93NUMPY", 6) + major + '\0';
    const auto n = header.size();
    out += static_cast<char>(n & 0xff);
    out += static_cast<char>((n >> 8) & 0xff);
    if (major != 1) out += std::string(2, '\0');
    return out + header + data;
  };
  write(dir / "v2_i4.npy", npy(2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                               std::string("\x01\x00\x00\x00\xff\xff\xff\xff", 8)));
  write(dir / "v3_f4.npy", npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
                               std::string("\x00\x00\x80\x3f", 4)));
}

void tensor_pbs(const fs::path& dir) {
  using TP = onnx::TensorProto;
  auto save = [&](const std::string& name, const TP& t) {
    write(dir / name, t.SerializeAsString());
  };
  TP raw;
  raw.set_data_type(TP::FLOAT);
  raw.add_dims(2);
  raw.add_dims(2);
  raw.set_raw_data(std::string(16, '\x01'));
  save("raw_float.pb", raw);
  TP typed;
  typed.set_data_type(TP::FLOAT16);
  typed.add_dims(3);
  for (int v : {0x3c00, 0x0001, 0x7c00}) typed.add_int32_data(v);
  save("typed_half.pb", typed);
  TP u64;
  u64.set_data_type(TP::UINT64);
  u64.add_dims(2);
  u64.add_uint64_data(5);
  u64.add_uint64_data(~0ull);
  save("typed_uint64.pb", u64);
  auto external = [&](const std::string& name, const std::string& location, int dim,
                      const std::string& offset, const std::string& length) {
    TP t;
    t.set_data_type(TP::INT32);
    t.add_dims(dim);
    t.set_data_location(TP::EXTERNAL);
    auto add = [&](const char* key, const std::string& value) {
      if (value.empty()) return;
      auto* e = t.add_external_data();
      e->set_key(key);
      e->set_value(value);
    };
    add("location", location);
    add("offset", offset);
    add("length", length);
    save(name, t);
  };
  external("external.pb", "weights.bin", 16, "64", "64");
  external("external_all.pb", "sub/w.bin", 16, "", "");
  external("external_dotdot.pb", "../weights.bin", 16, "", "");
  external("external_absolute.pb", "/etc/hostname", 1, "", "");
  external("external_symlink.pb", "escape.bin", 1, "", "4");
  external("external_past_end.pb", "weights.bin", 16, "4090", "64");
}

void checkpoints(const fs::path& dir) {
  train::Checkpoint full;
  Tensor kernel(DType::f32, {2, 3});
  for (std::int64_t i = 0; i < kernel.size(); ++i) kernel.data<float>()[i] = 0.5f * i - 1;
  full.parameters["conv1.weight"] = kernel;
  full.parameters["conv1.bias"] = Tensor(DType::f32, {3});
  full.parameters["bn.running_mean"] = Tensor(DType::f64, {1});
  full.optimizer["conv1.weight/m"] = kernel;
  full.optimizer["conv1.weight/v"] = kernel;
  full.optimizer["step"] = Tensor(DType::i64, {});
  full.state = {{"epoch", 3},
                {"best", 0.875},
                {"history", {{{"loss", 0.69}, {"accuracy", 0.5}}}},
                {"schedule", {{"lr", 1e-3}, {"patience_left", 2}}}};
  const std::string bytes = train::encode_checkpoint(full);
  write(dir / "full.ckpt", bytes);
  write(dir / "full_truncated.ckpt", bytes.substr(0, bytes.size() / 2));
  write(dir / "empty.ckpt", train::encode_checkpoint(train::Checkpoint{}));
  train::Checkpoint odd;
  odd.parameters["half"] = Tensor(DType::bf16, {2, 0, 5});
  odd.parameters["flags"] = Tensor(DType::u8, {4});
  odd.parameters["scalar"] = Tensor(DType::f32, {});
  write(dir / "odd.ckpt", train::encode_checkpoint(odd));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUT\n");
    return 2;
  }
  const fs::path out(argv[1]);
  images(out / "image");
  npys(out / "npy");
  tensor_pbs(out / "tensor_pb");
  checkpoints(out / "checkpoint");
  std::printf("make_seeds: wrote %s/{image,npy,tensor_pb,checkpoint}\n", out.string().c_str());
  return 0;
}
