// The default backbone of the gender workload's transfer learning. No pretrained VGG16 can be
// downloaded on these machines, so onnxforge pretrains a width-reduced one itself, on a source
// task whose labels do not encode gender by construction: attributes the face generator draws
// independently of it (glasses, age, curly hair, expression, pose, light, background, camera).
// The source faces are other people than the gender datasets' (their own seeds), half drawn in
// the studio camera and half in the wild one, both genders alike: the backbone sees the variety of
// scenes an ImageNet backbone has seen, and learns where the eyes, mouth, hair and head are.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "trainers/config.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace onnxforge::gender {

// One label of the source task: a yes/no question about what was drawn.
struct SourceAttribute {
  std::string name;     // "glasses"
  std::string meaning;  // "wears glasses or sunglasses"
};
// The source task's labels, in the order of the backbone head's outputs. None of them is drawn
// from the gender (tests/workloads check that each is as frequent for both).
const std::vector<SourceAttribute>& source_attributes();
// 0/1 per source_attributes() entry.
std::vector<float> source_targets(const FaceAttributes& attributes);

struct SourceFacesOptions {
  std::filesystem::path out;  // OUT/NNNNNN.jpg and OUT/attributes.csv
  std::uint64_t seed = 1;
  int count = 8000;
  int threads = 0;  // 0 = all cores
};
// Writes the source faces (even indices studio, odd wild; gender alternating in pairs), or
// reuses a complete set written with the same options (OUT/onnxforge-source.txt, written last).
// Returns the attributes of every image, in index order.
std::vector<FaceAttributes> generate_source_faces(const SourceFacesOptions& options);

struct BackbonePretraining {
  double width = 0.25;     // of VGG16's filters (graph/models.hpp)
  bool batch_norm = true;  // VGG16 with batch normalization (torchvision's vgg16_bn)
  int images = 8000;       // source faces; the last 10% are held out
  int epochs = 4;
  int batch_size = 32;
  double learning_rate = 2e-3;  // Adam
  std::uint64_t seed = 7;
};

// Throws Error for a width outside (0, 1], fewer than 100 images or no epoch, naming the options
// with `prefix` ("--" for `backbone`'s, "--backbone-" for `run`'s).
void check_pretraining(const BackbonePretraining& options, const std::string& prefix);

struct PretrainedBackbone {
  Graph model;  // VGG16 features (block5_pool), then a head: Dense 128 ReLU, Dense K (logits)
  // Held-out accuracy per source attribute, and what always answering the majority would get.
  std::vector<double> held_out_accuracy, majority_accuracy;
  double seconds = 0.0;
  // What the backbone learnt from, in one paragraph (the report's backbone note).
  std::string description() const;
  BackbonePretraining options;
};

// Pretrains the width-reduced VGG16 on the source task: `source_dir` holds (or receives) the
// source faces; compute (backend, threads, dtype) comes from `base.train` (fp32 under "auto": the
// plain VGG16 escapes its initial plateau later in bf16). `print` receives progress lines.
PretrainedBackbone pretrain_attribute_backbone(
    const train::TrainConfig& base, const BackbonePretraining& options,
    const std::filesystem::path& source_dir, const std::function<void(const std::string&)>& print);

// The default backbone's file in `dir` (DIR/vgg16[bn]-w<width>-attributes-<images>x<epochs>.onnx),
// pretrained and exported once (with the description beside it, .txt), then reused: returns
// the file and the description. `export_onnx` writes a graph to a path (the caller's exporter,
// which records the preprocessing). Source faces go into DIR/source.
struct BackboneFile {
  std::filesystem::path onnx;
  std::string description;
  bool reused = false;
};
BackboneFile default_backbone(
    const std::filesystem::path& dir, const train::TrainConfig& base,
    const BackbonePretraining& options, const std::function<void(const std::string&)>& print,
    const std::function<void(const Graph&, const std::filesystem::path&)>& export_onnx);

}  // namespace onnxforge::gender
