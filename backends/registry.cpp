#include <algorithm>

#include "backends/backend.hpp"
#include "backends/reference/reference_backend.hpp"
#include "core/error.hpp"
#ifdef ONNXFORGE_HAVE_ONEDNN
#include "backends/onednn/onednn_backend.hpp"
#endif
#ifdef ONNXFORGE_HAVE_CUDNN
#include "backends/cudnn/cudnn_backend.hpp"
#endif

namespace onnxforge {

namespace {

const std::vector<std::pair<std::string, BackendFactory>>& factories() {
  static const std::vector<std::pair<std::string, BackendFactory>> all = {
#ifdef ONNXFORGE_HAVE_ONEDNN
      {"onednn", make_onednn_backend},
#endif
#ifdef ONNXFORGE_HAVE_CUDNN
      {"cudnn", make_cudnn_backend},
#endif
      {"reference", make_reference_backend},
  };
  return all;
}

}  // namespace

std::vector<std::string> backend_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  for (const auto& [known, factory] : factories()) {
    if (known == name) return factory();
  }
  fail("unknown backend '{}' (this build has: {})", name, fmt::join(backend_names(), ", "));
}

}  // namespace onnxforge
