#include "data/dataset.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <system_error>

#include "core/error.hpp"
#include "data/rng.hpp"

namespace onnxforge::data {
namespace fs = std::filesystem;

namespace {

std::string trim(std::string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return std::string(text.substr(begin, end - begin));
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// Hidden entries (".ipynb_checkpoints", ".DS_Store", "._x.jpg") and macOS zip metadata
// ("__MACOSX") are never classes or images.
bool is_metadata(const fs::path& path) {
  const std::string name = path.filename().string();
  return (!name.empty() && name[0] == '.') || name == "__MACOSX";
}

// Collects image files under `dir`, following directory symlinks but never a directory twice.
class Walker {
 public:
  Walker(std::vector<fs::path>& files, std::vector<SkippedFile>& skipped)
      : files_(files), skipped_(skipped) {}

  void walk(const fs::path& dir, std::vector<fs::path>& ancestors) {
    std::error_code ec;
    const fs::path real = fs::canonical(dir, ec);
    if (ec) {
      skipped_.push_back({dir, fmt::format("cannot resolve folder ({})", ec.message())});
      return;
    }
    if (!visited_.insert(real).second) {
      const bool loop = std::find(ancestors.begin(), ancestors.end(), real) != ancestors.end();
      skipped_.push_back(
          {dir,
           loop ? "symlink loop (links back to a folder being scanned)"
                : fmt::format("folder already scanned through another path ({})", real.string())});
      return;
    }
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      entries.push_back(*it);
    }
    if (ec) {
      skipped_.push_back({dir, fmt::format("cannot list folder ({})", ec.message())});
      return;
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path() < b.path(); });
    ancestors.push_back(real);
    for (const auto& entry : entries) {
      const fs::path& path = entry.path();
      if (is_metadata(path)) {
        skipped_.push_back({path, "hidden or metadata entry ignored"});
        continue;
      }
      std::error_code status_ec;
      const auto status = fs::status(path, status_ec);  // follows symlinks
      if (status_ec) {
        const bool is_loop = status_ec == std::errc::too_many_symbolic_link_levels;
        const bool dangling = status_ec == std::errc::no_such_file_or_directory;
        skipped_.push_back({path, is_loop ? "symlink loop (too many levels of symbolic links)"
                                  : dangling
                                      ? "broken symlink (target does not exist)"
                                      : fmt::format("cannot stat ({})", status_ec.message())});
        continue;
      }
      if (fs::is_directory(status)) {
        walk(path, ancestors);
      } else if (!fs::is_regular_file(status)) {
        skipped_.push_back({path, "not a regular file"});
      } else if (!has_image_extension(path)) {
        skipped_.push_back({path, "not an image file name (expected .jpg .jpeg .png .bmp)"});
      } else {
        files_.push_back(path);
      }
    }
    ancestors.pop_back();
  }

 private:
  std::vector<fs::path>& files_;
  std::vector<SkippedFile>& skipped_;
  std::set<fs::path> visited_;
};

}  // namespace

LabelMap parse_label_map(std::string_view text) {
  LabelMap map;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view entry = text.substr(start, comma - start);
    start = comma + 1;
    if (trim(entry).empty()) {
      if (comma == text.size()) break;
      continue;
    }
    const std::size_t eq = entry.find('=');
    const std::string folder = trim(entry.substr(0, eq));
    const std::string name = eq == std::string_view::npos ? "" : trim(entry.substr(eq + 1));
    if (eq == std::string_view::npos || folder.empty() || name.empty() ||
        name.find('=') != std::string::npos) {
      throw Error(fmt::format(
          "label map entry '{}' is not folder=Class (example: man=Male,woman=Female)", entry));
    }
    if (map.contains(folder) && map[folder] != name) {
      throw Error(
          fmt::format("label map maps folder '{}' twice ({} and {})", folder, map[folder], name));
    }
    map[folder] = name;
  }
  return map;
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

std::vector<std::size_t> ImageFolder::counts() const {
  std::vector<std::size_t> out(classes.size(), 0);
  for (const auto& sample : samples) ++out.at(static_cast<std::size_t>(sample.label));
  return out;
}

ImageFolder scan_image_folder(const fs::path& root, const ScanOptions& options) {
  std::error_code ec;
  const auto root_status = fs::status(root, ec);
  if (ec || !fs::exists(root_status)) {
    throw Error(fmt::format("dataset folder {} does not exist", root.string()));
  }
  if (!fs::is_directory(root_status)) {
    throw Error(fmt::format("dataset path {} is not a folder", root.string()));
  }
  ImageFolder folder;
  folder.root = root;

  // Class folders: every sub-folder of the root (symlinks to folders included), by mapped name.
  std::map<std::string, std::vector<fs::path>> folders_of_class;
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  if (ec) {
    throw Error(fmt::format("cannot list dataset folder {}: {}", root.string(), ec.message()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& entry : entries) {
    if (is_metadata(entry.path())) {
      folder.skipped.push_back({entry.path(), "hidden or metadata entry ignored (not a class)"});
      continue;
    }
    std::error_code status_ec;
    const auto status = fs::status(entry.path(), status_ec);  // follows symlinks
    if (status_ec || !fs::is_directory(status)) {
      folder.skipped.push_back(
          {entry.path(), status_ec ? fmt::format("cannot stat ({})", status_ec.message())
                                   : "not a class folder (files in the dataset root are ignored)"});
      continue;
    }
    const std::string name = entry.path().filename().string();
    const auto mapped = options.label_map.find(name);
    folders_of_class[mapped == options.label_map.end() ? name : mapped->second].push_back(
        entry.path());
  }

  if (options.classes.empty()) {
    for (const auto& [name, paths] : folders_of_class) folder.classes.push_back(name);
  } else {
    folder.classes = options.classes;
    std::set<std::string> seen;
    for (const auto& name : folder.classes) {
      if (!seen.insert(name).second) {
        throw Error(fmt::format("class '{}' is listed twice", name));
      }
      if (!folders_of_class.contains(name)) {
        std::vector<std::string> found;
        for (const auto& [other, paths] : folders_of_class) found.push_back(other);
        throw Error(fmt::format("class '{}' has no folder in {} (found: {})", name, root.string(),
                                found.empty() ? "none" : join(found)));
      }
    }
    for (const auto& [name, paths] : folders_of_class) {
      if (!seen.contains(name)) {
        for (const auto& path : paths)
          folder.skipped.push_back({path, "folder not in the class list"});
      }
    }
  }
  if (folder.classes.size() < 2) {
    throw Error(
        fmt::format("dataset folder {} has {} class folder{}{}; classification needs at least two",
                    root.string(), folder.classes.size(), folder.classes.size() == 1 ? "" : "s",
                    folder.classes.empty() ? "" : " (" + folder.classes.front() + ")"));
  }

  for (std::size_t label = 0; label < folder.classes.size(); ++label) {
    std::vector<fs::path> files;
    Walker walker(files, folder.skipped);
    for (const auto& class_dir : folders_of_class[folder.classes[label]]) {
      std::vector<fs::path> ancestors;
      walker.walk(class_dir, ancestors);
    }
    if (files.empty()) {
      throw Error(fmt::format("class folder {} contains no images (.jpg .jpeg .png .bmp)",
                              folders_of_class[folder.classes[label]].front().string()));
    }
    std::sort(files.begin(), files.end());
    for (auto& path : files) folder.samples.push_back({std::move(path), static_cast<int>(label)});
  }
  return folder;
}

Split split_validation(const ImageFolder& folder, double fraction, std::uint64_t seed) {
  if (!(fraction >= 0.0 && fraction < 1.0)) {
    throw Error(fmt::format("validation split {} is not a fraction in [0, 1)", fraction));
  }
  Split split;
  split.train.root = split.validation.root = folder.root;
  split.train.classes = split.validation.classes = folder.classes;
  split.train.skipped = folder.skipped;
  for (std::size_t label = 0; label < folder.classes.size(); ++label) {
    std::vector<std::size_t> members;
    for (std::size_t i = 0; i < folder.samples.size(); ++i) {
      if (folder.samples[i].label == static_cast<int>(label)) members.push_back(i);
    }
    Rng rng(derive_seed(seed, 0x5b117, label));
    rng.shuffle(std::span<std::size_t>(members));
    std::size_t n_val =
        static_cast<std::size_t>(fraction * static_cast<double>(members.size()) + 0.5);
    if (fraction > 0.0) n_val = std::max<std::size_t>(n_val, 1);
    n_val = std::min(n_val, members.size());
    std::sort(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(n_val));
    std::sort(members.begin() + static_cast<std::ptrdiff_t>(n_val), members.end());
    for (std::size_t k = 0; k < members.size(); ++k) {
      (k < n_val ? split.validation : split.train).samples.push_back(folder.samples[members[k]]);
    }
  }
  return split;
}

}  // namespace onnxforge::data
