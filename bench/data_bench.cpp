// onnxforge-data-bench: data-loading throughput, printed in the same units as the OpenCV-Python
// anchor (bench/anchors/data_loading.py); bench/anchors/data_loading.sh runs both side by side.
//
//   onnxforge-data-bench --prepare DIR [--count N] [--side PX] [--seed S]
//       writes N synthetic faces as PX x PX JPEGs into DIR/{Female,Male}
//   onnxforge-data-bench DIR [--size PX] [--repeat R] [--epochs E] [--batch B]
//       first epoch: decode + resize with 1 and 2 threads (best of R);
//       later epochs: augment + normalise + batch from the cache with 1 and 2 loader threads.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "data/dataset.hpp"
#include "data/loader.hpp"
#include "data/rng.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace data = onnxforge::data;
namespace fs = std::filesystem;

namespace {

// Process CPU time (all threads), to tell a slow machine from a busy one.
double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void prepare(const fs::path& dir, int count, int side, std::uint64_t seed) {
  fs::create_directories(dir / "Female");
  fs::create_directories(dir / "Male");
  for (int i = 0; i < count; ++i) {
    const int label = i % 2;
    const auto jpeg = onnxforge::gender::render_synthetic_face(
        data::derive_seed(seed, 77, i), label, onnxforge::gender::SynthDomain::studio);
    cv::Mat face = cv::imdecode(jpeg, cv::IMREAD_COLOR);
    cv::resize(face, face, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
    std::vector<std::uint8_t> bytes;
    cv::imencode(".jpg", face, bytes, {cv::IMWRITE_JPEG_QUALITY, 90});
    std::ofstream(dir / (label == 0 ? "Female" : "Male") / fmt::format("{:06d}.jpg", i),
                  std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  fmt::print("prepared {} {}x{} JPEGs in {}\n", count, side, side, dir.string());
}

int run(int argc, char** argv) {
  std::string dir;
  int count = 2000, side = 180, size = 100, repeat = 3, epochs = 3, batch = 64;
  std::uint64_t seed = 1;
  bool do_prepare = false;
  // The options that take a whole number.
  const std::pair<std::string_view, int*> int_options[] = {
      {"--count", &count},   {"--side", &side},     {"--size", &size},
      {"--repeat", &repeat}, {"--epochs", &epochs}, {"--batch", &batch}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    const auto* int_option = std::find_if(std::begin(int_options), std::end(int_options),
                                          [&](const auto& option) { return option.first == arg; });
    if (int_option != std::end(int_options)) {
      *int_option->second = std::stoi(value());
    } else if (arg == "--prepare") {
      do_prepare = true;
      dir = value();
    } else if (arg == "--seed") {
      seed = std::stoull(value());
    } else if (arg == "--help" || arg == "-h") {
      std::puts(
          "usage: onnxforge-data-bench --prepare DIR [--count N] [--side PX] [--seed S]\n"
          "       onnxforge-data-bench DIR [--size PX] [--repeat R] [--epochs E] [--batch B]");
      return 0;
    } else {
      dir = arg;
    }
  }
  if (dir.empty()) throw std::runtime_error("no folder given (see --help)");
  if (do_prepare) {
    prepare(dir, count, side, seed);
    return 0;
  }

  const auto folder = data::scan_image_folder(dir);
  const double n = static_cast<double>(folder.samples.size());
  data::ImageCache cache;
  for (int threads : {1, 2}) {
    double best = 1e30;
    double best_cpu = 1e30;
    for (int r = 0; r < repeat; ++r) {
      data::LoadOptions options;
      options.height = options.width = size;
      options.threads = threads;
      const double start = now();
      const double cpu_start = cpu_now();
      cache = data::load_images(folder, options);
      best = std::min(best, now() - start);
      best_cpu = std::min(best_cpu, cpu_now() - cpu_start);
    }
    fmt::print(
        "first epoch (decode+resize to {}x{}), threads={}: {:.0f} images/s ({:.0f} us CPU per "
        "image)\n",
        size, size, threads, n / best, best_cpu / n * 1e6);
  }
  for (int threads : {1, 2}) {
    data::BatchOptions options;
    options.batch_size = batch;
    options.augment = data::Augment::standard();
    options.threads = threads;
    data::BatchStream stream(cache, options);
    data::Batch b;
    double checksum = 0.0;
    std::size_t images = 0;
    stream.start_epoch(0);  // warm-up epoch
    while (stream.next(b)) checksum += b.images[0];
    const double start = now();
    const double cpu_start = cpu_now();
    for (int e = 1; e <= epochs; ++e) {
      stream.start_epoch(e);
      while (stream.next(b)) {
        checksum += b.images[0];
        images += static_cast<std::size_t>(b.n);
      }
    }
    const double seconds = now() - start;
    const double cpu = cpu_now() - cpu_start;
    fmt::print(
        "cached epochs (augment+normalise+batch {}), loader threads={}: {:.0f} images/s ({:.0f} "
        "us CPU per image, checksum {:.3f})\n",
        batch, threads, static_cast<double>(images) / seconds,
        cpu / static_cast<double>(images) * 1e6, checksum);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnxforge-data-bench: error: %s\n", e.what());
    return 1;
  }
}
