// Synthetic faces: the project's default data. Writes the two Kaggle layouts
//   OUT/gender/train/{Female,Male}/*.jpg   100x100, studio-like    (the "train" count)
//   OUT/gender/test/{Female,Male}/*.jpg    100x100, studio-like    (the "val" count)
//   OUT/faces/{man,woman}/*.jpg            64..300 px, not square, other lighting, backgrounds and
//                                          camera: a shifted domain (the "test" count)
// Faces are drawn with OpenCV from sampled attributes (head shape, skin tone, eyes, brows, nose,
// lips, hair length, style and colour, facial hair, glasses, earrings, clothes, background,
// lighting, pose, blur, noise, JPEG quality). Gender shifts several distributions, through a
// continuous "masculinity" that overlaps between the classes, so that no single cue decides; 1%
// of the labels are flipped (SynthOptions::label_noise). Deterministic for a seed: the same bytes,
// whatever the thread count. OUT/attributes.csv says what every image shows; OUT/groups.csv
// groups them by skin tone, age and glasses for the report's subgroup metrics.
//
// How the classes differ (m ~ N(+-1.1, 0.6): about 3% of each class sits on the other side):
//   driven by m, with noise   jaw squareness, face width, hair length (bald .. past the
//                             shoulders), brow thickness/arch/height, eye size, lip fullness,
//                             nose size, neck width, shoulder width, a slight skin hue, makeup
//                             (eyeliner, shadow, blush, lipstick: ~55% F, 3% M)
//   drawn gender only         facial hair (stubble, moustache, goatee, beard: ~45% of M, no F),
//                             earrings (45% F, 6% M), hair tied back (long hair: 18% F, 5% M), an
//                             open neckline (50% F, 20% M), a receding hairline and baldness with
//                             age (M)
//   independent of gender     skin tone, hair colour (grey and white with age), eye colour,
//                             glasses, age (forehead lines), curls, expression, pose, clothes
//                             colour, background, lighting, blur, noise, JPEG quality
// The faces/ domain is another source: the camera and scene differ, not the people. Image size
// 64..300 px with aspect 0.72..1.35 (squashed or stretched when resized to 100x100 on load), the
// face smaller and off-centre (scale 0.72-1.02 of the short side, centre within 7% of the middle;
// studio 0.88-1.08, centred), more head turn and tilt (yaw sd 0.22, roll sd 9 degrees; studio
// 0.12 and 4.5), outdoor, indoor, night or saturated backgrounds with depth-of-field blur,
// stronger directional light, colour casts and exposure, more blur and noise, JPEG quality 40-90,
// 6% greyscale. A model trained on images drawn like faces/ (gender_domain = wild) reaches a
// faces/ AUC of at least 0.95 (tests/workloads/learnable_test.cpp): the domain is learnable, and
// what a studio-trained model loses on it is the shift.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace onnxforge::gender {

enum class SynthDomain { studio, wild };

struct SynthOptions {
  std::filesystem::path out;
  std::uint64_t seed = 1;
  int train = 2000;  // gender/train
  int val = 400;     // gender/test (in-domain held-out set, used for validation)
  int test = 1000;   // faces/ (shifted domain)
  int threads = 0;   // 0 = all cores
  double label_noise = 0.01;
  // The domain of gender/train and gender/test: studio (the default), or wild as faces/ is, to
  // check that the shifted domain is learnable by a model trained on it.
  SynthDomain gender_domain = SynthDomain::studio;

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

// Writes the dataset, and beside it OUT/attributes.csv (what every image shows, below) and
// OUT/groups.csv (path,skin_tone,age,glasses: the groups of the report's subgroup metrics). Refuses
// (Error naming the folder) to write into a non-empty OUT that it did not create itself; OUT/gender
// and OUT/faces written earlier (marked by OUT/onnxforge-synth.txt) are replaced.
SynthSummary generate_synthetic_faces(const SynthOptions& options);

// True when OUT holds a complete set generated with these options (same seed, sizes and label
// noise; the marker file is written last), so a caller can reuse it instead of regenerating.
bool synthetic_faces_ready(const SynthOptions& options);

// What was drawn into one image besides its gender. Everything here is drawn independently of
// the gender (the pretraining task of the default backbone learns from these; groups.csv groups
// by skin tone, age and glasses), except where a comment says otherwise.
struct FaceAttributes {
  int gender = 0;          // the drawn gender: 0 female, 1 male (before label noise)
  double skin_tone = 0.0;  // 0 lightest .. 1 darkest of the palette
  double age = 0.0;        // 0 .. 1 (grey hair and forehead lines with age)
  bool glasses = false;    // glasses or sunglasses
  bool sunglasses = false;
  bool curly = false;      // curly hair
  bool grey_hair = false;  // grey or white (from the age alone)
  bool dark_hair = false;  // hair palette 0-2 (black, dark and mid brown)
  // 0 black, 1 dark brown, 2 brown, 3 light brown, 4 blond, 5 auburn, 6 grey, 7 white
  int hair_colour = 0;
  bool hair_visible = true;  // not bald (more men are bald: not a source-task label)
  std::array<double, 3> clothes_rgb{0, 0, 0};
  double yaw = 0.0;          // head turned: -0.45 .. 0.45 of its half-width
  double roll = 0.0;         // head tilt, degrees
  double smile = 0.0;        // -0.3 (corners down) .. 1 (broad smile)
  int background = 0;        // 0 studio, 1 outdoors, 2 indoors, 3 night, 4 saturated colour
  double face_scale = 0.0;   // face size unit over the image's short side
  double light_angle = 0.0;  // direction of the light gradient, radians
  double light_strength = 0.0;
  double exposure = 1.0;
  double blur = 0.0, noise = 0.0;  // camera blur sigma (px) and noise sd (grey levels)
  bool greyscale = false;
  int jpeg_quality = 0;
  int width = 0, height = 0;  // the written image's size
};

// One face as JPEG bytes: label 0 = female, 1 = male (the drawn gender, before label noise);
// `attributes`, when given, receives what was drawn.
std::vector<std::uint8_t> render_synthetic_face(std::uint64_t image_seed, int label,
                                                SynthDomain domain,
                                                FaceAttributes* attributes = nullptr);

// The bands groups.csv reports (subgroup metrics): skin tone light / medium / dark, age young /
// middle / older, glasses none / glasses / sunglasses.
std::string skin_tone_group(double skin_tone);
std::string age_group(double age);
std::string glasses_group(const FaceAttributes& attributes);

// attributes.csv's header and one row (path relative to OUT, split, domain, folder label, drawn
// gender, whether the label was flipped, then the FaceAttributes fields).
std::string attributes_csv_header();
std::string attributes_csv_row(const std::string& path, const std::string& split,
                               SynthDomain domain, int label, bool flipped,
                               const FaceAttributes& attributes);
// The FaceAttributes of every row of such a file, in file order (columns found by name). Throws
// Error "FILE:LINE: ..." for a missing column or a field that is not a number.
std::vector<FaceAttributes> read_attributes_csv(const std::filesystem::path& file);

}  // namespace onnxforge::gender
