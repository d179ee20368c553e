#include "apps/backbone.hpp"

#include "importers/onnx_import.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::cli {

Graph load_backbone(const train::TrainConfig& config) {
  ImportOptions options;
  options.cut_at = config.transfer.cut_at;
  return train::prepare_backbone(load_model(config.transfer.backbone, {}, options), "",
                                 Shape(config.model.input.begin(), config.model.input.end()));
}

}  // namespace onnxforge::cli
