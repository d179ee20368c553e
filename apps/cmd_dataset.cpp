// `onnxforge dataset DIR`: scans and decodes an image-folder dataset and reports on it.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "apps/command.hpp"
#include "data/dataset.hpp"
#include "data/loader.hpp"

namespace {

struct DatasetArgs {
  std::string dir;
  std::string label_map;
  std::string classes;
  int size = 100;
  int threads = 0;
  double validation_split = 0.0;
  std::uint64_t seed = 42;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

const onnxforge::cli::Registration registration{
    20, "dataset",
    "Scan an image-folder dataset (one folder per class, images found recursively), decode "
    "every image, and print the classes with their labels and counts and every skipped file "
    "with its reason.",
    [](CLI::App& sub) {
      auto args = std::make_shared<DatasetArgs>();
      sub.add_option("DIR", args->dir, "dataset root (one sub-folder per class)")->required();
      sub.add_option("--label-map", args->label_map,
                     "folder=Class pairs, e.g. man=Male,woman=Female");
      sub.add_option("--classes", args->classes,
                     "class names in label order, comma separated (default: sorted folder names)");
      sub.add_option("--size", args->size, "decode to SIZE x SIZE pixels")->capture_default_str();
      sub.add_option("--threads", args->threads, "decode threads (0 = all cores)")
          ->capture_default_str();
      sub.add_option(
             "--validation-split", args->validation_split,
             "also show a seeded, stratified split: this fraction of each class to validation")
          ->capture_default_str();
      sub.add_option("--seed", args->seed, "seed of the validation split")->capture_default_str();
      sub.callback([args] {
        namespace data = onnxforge::data;
        data::ScanOptions scan;
        if (!args->label_map.empty()) scan.label_map = data::parse_label_map(args->label_map);
        scan.classes = split_list(args->classes);
        const auto folder = data::scan_image_folder(args->dir, scan);
        data::LoadOptions load;
        load.height = load.width = args->size;
        load.threads = args->threads;
        load.warn = {};  // listed below instead
        const auto start = std::chrono::steady_clock::now();
        const auto cache = data::load_images(folder, load);  // prints skipped files to stderr
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        fmt::print("dataset {}: {} classes, {} images ({} files skipped)\n", args->dir,
                   cache.classes.size(), cache.size(), cache.skipped.size());
        const auto counts = cache.counts();
        for (std::size_t label = 0; label < cache.classes.size(); ++label) {
          fmt::print("  {} {:<12} {:>7}\n", label, cache.classes[label], counts[label]);
        }
        for (const auto& skip : cache.skipped) {
          fmt::print("  skipped {}: {}\n", skip.path.string(), skip.reason);
        }
        fmt::print("decoded and resized to {}x{} in {:.2f} s ({:.0f} images/s)\n", args->size,
                   args->size, seconds, folder.samples.size() / std::max(seconds, 1e-9));
        if (args->validation_split > 0.0) {
          const auto split = data::split_validation(folder, args->validation_split, args->seed);
          const auto train = split.train.counts();
          const auto val = split.validation.counts();
          fmt::print("validation split {} (seed {}), before decoding:\n", args->validation_split,
                     args->seed);
          for (std::size_t label = 0; label < folder.classes.size(); ++label) {
            fmt::print("  {:<12} train {:>7}  validation {:>7}\n", folder.classes[label],
                       train[label], val[label]);
          }
        }
      });
    }};

}  // namespace
