// Synthetic faces: the project's default data. Writes the two Kaggle layouts
//   OUT/gender/train/{Female,Male}/*.jpg   100x100, studio-like    (the "train" count)
//   OUT/gender/test/{Female,Male}/*.jpg    100x100, studio-like    (the "val" count)
//   OUT/faces/{man,woman}/*.jpg            64..300 px, not square, other lighting, backgrounds and
//                                          camera: a shifted domain (the "test" count)
// Faces are drawn with OpenCV from sampled attributes (head shape, skin tone, eyes, brows, nose,
// lips, hair length and style, facial hair, glasses, earrings, background, lighting, pose, blur,
// noise, JPEG quality). Gender shifts several distributions, through a continuous
// "masculinity" that overlaps between the classes, so that no single cue decides; about 2% of
// the labels are flipped. Deterministic for a seed: the same bytes, whatever the thread count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace onnxforge::data {

struct SynthOptions {
  std::filesystem::path out;
  std::uint64_t seed = 1;
  int train = 2000;  // gender/train
  int val = 400;     // gender/test (in-domain held-out set, used for validation)
  int test = 1000;   // faces/ (shifted domain)
  int threads = 0;   // 0 = all cores
  double label_noise = 0.02;

  // The sizes of the real datasets: 11,135 / 1,279 / 27,167.
  void use_full_size() {
    train = 11'135;
    val = 1'279;
    test = 27'167;
  }
};

struct SynthSummary {
  std::size_t images = 0;
  std::size_t bytes = 0;
  double seconds = 0.0;
};

// Writes the dataset. Refuses (std::runtime_error naming the folder) to write into a non-empty
// OUT that it did not create itself; OUT/gender and OUT/faces written earlier (marked by
// OUT/onnxforge-synth.txt) are replaced.
SynthSummary generate_synthetic_faces(const SynthOptions& options);

enum class SynthDomain { studio, wild };

// One face as JPEG bytes: label 0 = female, 1 = male (the drawn gender, before label noise).
std::vector<std::uint8_t> render_synthetic_face(std::uint64_t image_seed, int label,
                                                SynthDomain domain);

}  // namespace onnxforge::data
