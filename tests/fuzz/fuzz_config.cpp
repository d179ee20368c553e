// Fuzz target: the TOML config loader (trainers/config.hpp parse_config). An input may carry
// `--set` overrides after a line "#--set" (one per line), so that apply_override is reached too.
// A config that parses must print (to_toml) as TOML that parses back to the same text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "trainers/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace onnxforge;
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> overrides;
  if (const auto mark = text.find("#--set\n"); mark != std::string::npos) {
    std::size_t begin = mark + 7;
    while (begin < text.size()) {
      auto end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      overrides.push_back(text.substr(begin, end - begin));
      begin = end + 1;
    }
    text.resize(mark);
  }
  train::TrainConfig config;
  try {
    config = train::parse_config(text, "fuzz.toml", overrides);
  } catch (const Error&) {
    return 0;
  }
  const std::string printed = train::to_toml(config);
  const std::string again = train::to_toml(train::parse_config(printed, "printed.toml"));
  if (again != printed) std::abort();
  return 0;
}
