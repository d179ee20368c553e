// Whole files: read one, or write one atomically (a temporary file in the same folder, then a
// rename, so a reader never sees half a file and a killed process leaves the old one).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace onnxforge {

// Writes `content` to `path` atomically, creating missing parent folders. Throws Error naming the
// file on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Whole file as a string; throws Error naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// The same, or nothing when `path` is not a regular file or cannot be read: for a caller that
// words the error itself (a config, a checkpoint).
std::optional<std::string> try_read_file(const std::filesystem::path& path);

}  // namespace onnxforge
