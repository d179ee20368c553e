#include "apps/backbone.hpp"

#include "core/error.hpp"
#include "data/transform.hpp"
#include "importers/onnx_import.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::cli {

namespace {
constexpr const char* kPreprocessKey = "onnxforge.preprocess";
}

Graph load_backbone(train::TrainConfig& config) {
  ImportOptions options;
  options.cut_at = config.transfer.cut_at;
  const Graph backbone = load_model(config.transfer.backbone, {}, options);
  if (config.data.preprocess == "auto") {
    const auto it = backbone.metadata.find(kPreprocessKey);
    if (it == backbone.metadata.end()) {
      fail(
          "{}: the file does not say how its input is preprocessed (no '{}' metadata); give "
          "data.preprocess (or --backbone-preprocess): unit (pixels / 255), imagenet "
          "(torchvision, model zoo), caffe (Keras VGG16, ResNet50), tf (Keras MobileNetV2: "
          "[-1, 1]) or explicit 'order=rgb scale=1/255 mean=0.5,0.5,0.5 std=0.5,0.5,0.5'",
          config.transfer.backbone, kPreprocessKey);
    }
    config.data.preprocess = it->second;
  }
  data::Preprocess::parse(config.data.preprocess);  // a bad form fails before training
  return train::prepare_backbone(backbone, "",
                                 Shape(config.model.input.begin(), config.model.input.end()));
}

std::string preprocessing_of(const Graph& model, const std::string& requested) {
  if (requested != "auto") return requested;
  const auto it = model.metadata.find(kPreprocessKey);
  return it == model.metadata.end() ? "unit" : it->second;
}

}  // namespace onnxforge::cli
