#include "workloads/gender/synthetic_faces.hpp"

#include <fmt/format.h>

#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "core/error.hpp"
#include "core/files.hpp"
#include "data/parallel.hpp"
#include "data/rng.hpp"
#include "eval/io.hpp"
#include "workloads/gender/face_drawing.hpp"

namespace onnxforge::gender {

using data::derive_seed;
using data::Rng;
using detail::kPi;
namespace fs = std::filesystem;

namespace {

// The wild domain's image size: 64..300 px, never square.
cv::Size wild_image_size(Rng& rng) {
  const int out_w = rng.range(64, 300);
  double aspect = rng.uniform(0.72, 1.35);
  if (std::abs(aspect - 1.0) < 0.05) aspect = aspect < 1.0 ? 0.93 : 1.07;
  int out_h = std::clamp(static_cast<int>(std::lround(out_w * aspect)), 64, 300);
  if (out_h == out_w) out_h = out_w < 300 ? out_w + 1 : out_w - 1;
  return {out_w, out_h};
}

// Light, colour temperature and exposure; stronger in the wild domain.
void apply_lighting(cv::Mat& img, Rng& rng, SynthDomain domain, FaceAttributes& attributes) {
  const bool wild = domain == SynthDomain::wild;
  const double strength = wild ? rng.uniform(0.1, 0.55) : rng.uniform(0.0, 0.2);
  const double dir = rng.uniform(0.0, 2.0 * kPi);
  const double exposure = wild ? rng.uniform(0.6, 1.3) : rng.uniform(0.88, 1.1);
  const double warm = wild ? rng.uniform(-0.18, 0.18) : rng.uniform(-0.05, 0.05);
  attributes.light_strength = strength;
  attributes.light_angle = dir;
  attributes.exposure = exposure;
  const double gain[3] = {exposure * (1.0 - warm), exposure, exposure * (1.0 + warm)};
  const double gx = strength * std::cos(dir) / img.cols * 2.0;
  const double gy = strength * std::sin(dir) / img.rows * 2.0;
  for (int y = 0; y < img.rows; ++y) {
    auto* row = img.ptr<std::uint8_t>(y);
    const double base = 1.0 + gy * (y - img.rows * 0.5);
    for (int x = 0; x < img.cols; ++x) {
      const double g = base + gx * (x - img.cols * 0.5);
      for (int c = 0; c < 3; ++c) {
        row[3 * x + c] = cv::saturate_cast<std::uint8_t>(row[3 * x + c] * g * gain[c]);
      }
    }
  }
}

// Fast noise with unit variance: the sum of two 16-bit uniforms (a triangular distribution).
double quick_noise(std::uint32_t bits) {
  const double sum = static_cast<double>(bits & 0xFFFF) + static_cast<double>(bits >> 16);
  return (sum / 65535.0 - 1.0) * 2.449489742783178;  // var of the sum of 2 U(0,1) = 1/6
}

// Sensor noise of standard deviation `noise` on every channel value.
void add_noise(cv::Mat& out, Rng& rng, double noise) {
  for (int y = 0; y < out.rows; ++y) {
    auto* row = out.ptr<std::uint8_t>(y);
    for (int x = 0; x < out.cols * 3; x += 2) {
      const std::uint64_t bits = rng.bits();  // two noise values per draw
      row[x] = cv::saturate_cast<std::uint8_t>(
          row[x] + noise * quick_noise(static_cast<std::uint32_t>(bits)));
      if (x + 1 < out.cols * 3) {
        row[x + 1] = cv::saturate_cast<std::uint8_t>(
            row[x + 1] + noise * quick_noise(static_cast<std::uint32_t>(bits >> 32)));
      }
    }
  }
}

// The camera on the final-size image: blur, noise, sometimes greyscale.
void apply_camera(cv::Mat& out, Rng& rng, SynthDomain domain, FaceAttributes& attributes) {
  const bool wild = domain == SynthDomain::wild;
  const double blur = wild ? rng.uniform(0.0, 1.2) : rng.uniform(0.0, 0.9);
  if (blur > 0.3) cv::GaussianBlur(out, out, cv::Size(0, 0), blur);
  const double noise = wild ? rng.uniform(2.0, 10.0) : rng.uniform(0.0, 5.0);
  add_noise(out, rng, noise);
  attributes.blur = blur > 0.3 ? blur : 0.0;
  attributes.noise = noise;
  attributes.greyscale = rng.chance(wild ? 0.06 : 0.02);
  if (attributes.greyscale) {
    cv::Mat grey;
    cv::cvtColor(out, grey, cv::COLOR_BGR2GRAY);
    cv::cvtColor(grey, out, cv::COLOR_GRAY2BGR);
  }
}

}  // namespace

std::vector<std::uint8_t> render_synthetic_face(std::uint64_t image_seed, int label,
                                                SynthDomain domain, FaceAttributes* attributes) {
  Rng rng(image_seed);
  FaceAttributes drawn;
  const bool wild = domain == SynthDomain::wild;
  const cv::Size size = wild ? wild_image_size(rng) : cv::Size(100, 100);
  cv::Mat canvas = detail::draw_face(rng, label, domain, size.width, size.height, drawn);
  apply_lighting(canvas, rng, domain, drawn);
  cv::Mat out;
  cv::resize(canvas, out, size, 0, 0, cv::INTER_AREA);
  apply_camera(out, rng, domain, drawn);
  const int quality = wild ? rng.range(40, 90) : rng.range(70, 95);
  drawn.jpeg_quality = quality;
  drawn.width = size.width;
  drawn.height = size.height;
  if (attributes) *attributes = drawn;
  std::vector<std::uint8_t> bytes;
  cv::imencode(".jpg", out, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  return bytes;
}

namespace {

// What a complete set was generated with (the file OUT/onnxforge-synth.txt).
std::string marker_text(const SynthOptions& options) {
  return fmt::format(
      "onnxforge synth v2\nseed={}\ntrain={}\nval={}\ntest={}\nlabel_noise={}\ngender_domain={}\n",
      options.seed, options.train, options.val, options.test, options.label_noise,
      options.gender_domain == SynthDomain::wild ? "wild" : "studio");
}

// Refuses a non-empty OUT not written by synth; removes what an earlier run wrote, marker first.
void clear_out_folder(const SynthOptions& options) {
  const fs::path marker = options.out / "onnxforge-synth.txt";
  const bool ours = fs::exists(marker);
  if (!ours && fs::exists(options.out) && !fs::is_empty(options.out)) {
    throw Error(fmt::format(
        "{} is not empty and was not written by onnxforge synth; choose an empty or new --out",
        options.out.string()));
  }
  for (const char* sub : {"gender", "faces"}) {
    const fs::path dir = options.out / sub;
    if (!fs::exists(dir)) continue;
    if (!ours) {
      throw Error(fmt::format(
          "{} exists and was not written by onnxforge synth; choose another --out", dir.string()));
    }
    fs::remove_all(dir);
  }
  // The marker is written last: a run that stops half-way leaves no marker of a complete set.
  fs::remove(marker);
  for (const char* file : {"attributes.csv", "groups.csv"}) fs::remove(options.out / file);
}

struct Job {
  fs::path file;
  int label;
  SynthDomain domain;
  std::uint64_t seed;
  const char* split;
};

// One job per image, in the three splits' folders (created here).
std::vector<Job> list_jobs(const SynthOptions& options) {
  std::vector<Job> jobs;
  auto add = [&](const fs::path& root, const char* female, const char* male, int count,
                 SynthDomain domain, std::uint64_t split) {
    fs::create_directories(root / female);
    fs::create_directories(root / male);
    for (int i = 0; i < count; ++i) {
      const int label = i % 2;  // balanced: female at even indices
      jobs.push_back({root / (label == 0 ? female : male) / fmt::format("{:06d}.jpg", i), label,
                      domain, derive_seed(options.seed, split, static_cast<std::uint64_t>(i)),
                      split == 1   ? "train"
                      : split == 2 ? "val"
                                   : "test"});
    }
  };
  add(options.out / "gender" / "train", "Female", "Male", options.train, options.gender_domain, 1);
  add(options.out / "gender" / "test", "Female", "Male", options.val, options.gender_domain, 2);
  add(options.out / "faces", "woman", "man", options.test, SynthDomain::wild, 3);
  return jobs;
}

// Renders and writes every job on `threads` threads; returns the bytes written. `drawn` receives
// each job's attributes and whether its label was flipped.
std::size_t write_images(const std::vector<Job>& jobs, double label_noise, int threads,
                         std::vector<FaceAttributes>& drawn, std::vector<char>& flipped) {
  std::atomic<std::size_t> bytes{0};
  std::vector<std::string> errors(jobs.size());
  drawn.assign(jobs.size(), {});
  flipped.assign(jobs.size(), 0);
  tbb::task_arena arena(threads);
  arena.execute([&] {
    data::detail::parallel_for(jobs.size(), 8, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i != end; ++i) {
        const Job& job = jobs[i];
        // The drawn gender; about 2% of the labels are wrong on purpose.
        Rng flip(derive_seed(job.seed, 0xf11b));
        flipped[i] = flip.chance(label_noise) ? 1 : 0;
        const int gender = flipped[i] ? 1 - job.label : job.label;
        const auto data = render_synthetic_face(job.seed, gender, job.domain, &drawn[i]);
        std::ofstream file(job.file, std::ios::binary);
        file.write(reinterpret_cast<const char*>(data.data()),
                   static_cast<std::streamsize>(data.size()));
        if (!file) errors[i] = "cannot write " + job.file.string();
        bytes += data.size();
      }
    });
  });
  for (const auto& error : errors) {
    if (!error.empty()) throw Error("synth: " + error);
  }
  return bytes.load();
}

std::string relative_path(const fs::path& file, const fs::path& root) {
  return file.lexically_relative(root).generic_string();
}

}  // namespace

std::string skin_tone_group(double skin_tone) {
  return skin_tone < 1.0 / 3 ? "light" : skin_tone < 2.0 / 3 ? "medium" : "dark";
}

std::string age_group(double age) { return age < 0.35 ? "young" : age < 0.7 ? "middle" : "older"; }

std::string glasses_group(const FaceAttributes& attributes) {
  return attributes.sunglasses ? "sunglasses" : attributes.glasses ? "glasses" : "none";
}

std::string attributes_csv_header() {
  return "path,split,domain,label,gender,label_flipped,skin_tone,age,glasses,sunglasses,curly,"
         "dark_hair,grey_hair,hair_colour,hair_visible,clothes_r,clothes_g,clothes_b,yaw,roll,"
         "smile,background,face_scale,light_angle,light_strength,"
         "exposure,"
         "blur,noise,greyscale,jpeg_quality,width,height\n";
}

std::string attributes_csv_row(const std::string& path, const std::string& split,
                               SynthDomain domain, int label, bool flipped,
                               const FaceAttributes& a) {
  return fmt::format(
      "{},{},{},{},{},{:d},{:.4f},{:.4f},{:d},{:d},{:d},{:d},{:d},{},{:d},{:.2f},{:.2f},{:.2f},{:."
      "4f},{:.3f},{:.4f},{},{:.4f},{:"
      ".4f},"
      "{:.4f},{:.4f},{:.3f},{:.3f},{:d},{},{},{}\n",
      path, split, domain == SynthDomain::wild ? "wild" : "studio", label, a.gender, flipped,
      a.skin_tone, a.age, a.glasses, a.sunglasses, a.curly, a.dark_hair, a.grey_hair, a.hair_colour,
      a.hair_visible, a.clothes_rgb[0], a.clothes_rgb[1], a.clothes_rgb[2], a.yaw, a.roll, a.smile,
      a.background, a.face_scale, a.light_angle, a.light_strength, a.exposure, a.blur, a.noise,
      a.greyscale, a.jpeg_quality, a.width, a.height);
}

std::vector<FaceAttributes> read_attributes_csv(const fs::path& file) {
  const auto rows = eval::parse_csv(read_file(file), file.string());
  if (rows.empty()) fail("{}: empty", file.string());
  const auto& header = rows[0];
  const auto column = [&](const char* name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail("{}: no column '{}'", file.string(), name);
    return static_cast<std::size_t>(it - header.begin());
  };
  // Every field, by its column (looked up once).
  const char* const names[] = {"gender",       "skin_tone",    "age",         "glasses",
                               "sunglasses",   "curly",        "dark_hair",   "grey_hair",
                               "hair_colour",  "hair_visible", "clothes_r",   "clothes_g",
                               "clothes_b",    "yaw",          "roll",        "smile",
                               "background",   "face_scale",   "light_angle", "light_strength",
                               "exposure",     "blur",         "noise",       "greyscale",
                               "jpeg_quality", "width",        "height"};
  std::vector<std::size_t> at;
  for (const char* name : names) at.push_back(column(name));
  std::vector<FaceAttributes> out;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& f = rows[r];
    if (f.size() != header.size()) {
      fail("{}:{}: {} fields, the header has {}", file.string(), r + 1, f.size(), header.size());
    }
    std::size_t next = 0;
    const auto number = [&] {
      const std::string& text = f[at[next]];
      const char* name = names[next++];
      try {
        std::size_t used = 0;
        const double value = std::stod(text, &used);
        if (used == text.size()) return value;
      } catch (const std::exception&) {
      }
      fail("{}:{}: {} '{}' is not a number", file.string(), r + 1, name, text);
    };
    const auto integer = [&] { return static_cast<int>(number()); };
    const auto flag = [&] { return number() != 0; };
    FaceAttributes a;  // in the order of `names`
    a.gender = integer();
    a.skin_tone = number();
    a.age = number();
    a.glasses = flag();
    a.sunglasses = flag();
    a.curly = flag();
    a.dark_hair = flag();
    a.grey_hair = flag();
    a.hair_colour = integer();
    a.hair_visible = flag();
    for (double& c : a.clothes_rgb) c = number();
    a.yaw = number();
    a.roll = number();
    a.smile = number();
    a.background = integer();
    a.face_scale = number();
    a.light_angle = number();
    a.light_strength = number();
    a.exposure = number();
    a.blur = number();
    a.noise = number();
    a.greyscale = flag();
    a.jpeg_quality = integer();
    a.width = integer();
    a.height = integer();
    out.push_back(a);
  }
  return out;
}

SynthSummary generate_synthetic_faces(const SynthOptions& options) {
  if (options.out.empty()) throw Error("synth: no output folder given");
  if (options.train < 2 || options.val < 2 || options.test < 2) {
    throw Error(
        fmt::format("synth: --train, --val and --test must each be at least 2 (got {}, {}, {})",
                    options.train, options.val, options.test));
  }
  clear_out_folder(options);
  const std::vector<Job> jobs = list_jobs(options);
  const auto start = std::chrono::steady_clock::now();
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  SynthSummary summary;
  summary.images = jobs.size();
  std::vector<FaceAttributes> drawn;
  std::vector<char> flipped;
  summary.bytes = write_images(jobs, options.label_noise, threads, drawn, flipped);
  // What each image shows (attributes.csv) and the groups of the subgroup metrics (groups.csv),
  // paths relative to OUT.
  std::string attributes = attributes_csv_header();
  std::string groups = "path,skin_tone,age,glasses\n";
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const std::string path = relative_path(jobs[i].file, options.out);
    attributes += attributes_csv_row(path, jobs[i].split, jobs[i].domain, jobs[i].label,
                                     flipped[i] != 0, drawn[i]);
    groups += fmt::format("{},{},{},{}\n", path, skin_tone_group(drawn[i].skin_tone),
                          age_group(drawn[i].age), glasses_group(drawn[i]));
  }
  write_file_atomic(options.out / "attributes.csv", attributes);
  write_file_atomic(options.out / "groups.csv", groups);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Written last, atomically: a killed run leaves no marker and is made again.
  write_file_atomic(options.out / "onnxforge-synth.txt", marker_text(options));
  return summary;
}

bool synthetic_faces_ready(const SynthOptions& options) {
  const auto text = try_read_file(options.out / "onnxforge-synth.txt");
  return text && *text == marker_text(options) &&
         fs::is_directory(options.out / "gender" / "train") &&
         fs::is_directory(options.out / "gender" / "test") &&
         fs::is_directory(options.out / "faces");
}

}  // namespace onnxforge::gender
