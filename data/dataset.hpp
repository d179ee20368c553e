// Image-folder datasets as users download them: a root with one folder per class, images found
// recursively inside each class folder, labels from a class list (by default the sorted class
// names, as Keras does: Female=0, Male=1), and an optional folder-name -> class-name map so that
// `faces/{man,woman}` reads with `man=Male,woman=Female`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace onnxforge::data {

// Folder name -> class name.
using LabelMap = std::map<std::string, std::string>;

// Parses "man=Male,woman=Female" (spaces around names ignored). Throws Error with
// one line naming the bad entry.
LabelMap parse_label_map(std::string_view text);

struct Sample {
  std::filesystem::path path;
  int label = 0;
};

struct SkippedFile {
  std::filesystem::path path;
  std::string reason;
};

struct ScanOptions {
  // Class names in label order. Empty: the sorted (mapped) names of the class folders.
  std::vector<std::string> classes;
  LabelMap label_map;
};

struct ImageFolder {
  std::filesystem::path root;
  std::vector<std::string> classes;  // label i is classes[i]
  std::vector<Sample> samples;       // by label, then by path
  std::vector<SkippedFile> skipped;  // found while scanning (other extensions, symlink loops...)

  std::vector<std::size_t> counts() const;  // samples per label
};

// True for .jpg .jpeg .png .bmp in any case.
bool has_image_extension(const std::filesystem::path& path);

// Scans `root`. Hidden entries (".ipynb_checkpoints", "._x.jpg") and "__MACOSX" are skipped, never
// taken as classes or images. Throws Error (one line naming the folder) when the root
// is missing or not a folder, when a class has no folder or its folders hold no image files, or
// when fewer than two classes remain.
ImageFolder scan_image_folder(const std::filesystem::path& root, const ScanOptions& options = {});

struct Split {
  ImageFolder train;
  ImageFolder validation;
};

// Seeded, stratified split: `fraction` of each class goes to validation (rounded, at least one
// sample per class when fraction > 0). Both parts keep the classes; skipped files stay with train.
Split split_validation(const ImageFolder& folder, double fraction, std::uint64_t seed);

}  // namespace onnxforge::data
