// `onnxforge synth`: writes the synthetic-face datasets (the project's default data).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <memory>

#include "apps/command.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace {

const onnxforge::cli::Registration registration{
    21, "synth",
    "Generate synthetic face images (the default data) in the Kaggle layouts: "
    "OUT/gender/{train,test}/{Female,Male} (100x100 JPEG) and OUT/faces/{man,woman} "
    "(64-300 px, a shifted domain), with attributes.csv and groups.csv beside them. "
    "Deterministic for a seed.",
    [](CLI::App& sub) {
      auto options = std::make_shared<onnxforge::gender::SynthOptions>();
      auto full_size = std::make_shared<bool>(false);
      sub.add_option("--out", options->out, "output folder")->required();
      sub.add_option("--seed", options->seed, "random seed (same seed, same bytes)")
          ->capture_default_str();
      sub.add_option("--train", options->train, "images in gender/train")->capture_default_str();
      sub.add_option("--val", options->val, "images in gender/test (in-domain validation)")
          ->capture_default_str();
      sub.add_option("--test", options->test, "images in faces/ (shifted-domain test)")
          ->capture_default_str();
      sub.add_option("--threads", options->threads, "threads (0 = all cores)")
          ->capture_default_str();
      sub.add_option("--label-noise", options->label_noise, "fraction of labels flipped")
          ->check(CLI::Range(0.0, 0.5))
          ->capture_default_str();
      auto gender_domain = std::make_shared<std::string>("studio");
      sub.add_option("--gender-domain", *gender_domain,
                     "the camera and scene of gender/train and gender/test: studio, or wild as "
                     "faces/ (to check that the shifted domain is learnable)")
          ->check(CLI::IsMember({"studio", "wild"}))
          ->capture_default_str();
      sub.add_flag("--full-size", *full_size,
                   "the real datasets' sizes: 11,135 train / 1,279 val / 27,167 test");
      sub.callback([options, full_size, gender_domain] {
        auto run = *options;
        run.gender_domain = *gender_domain == "wild" ? onnxforge::gender::SynthDomain::wild
                                                     : onnxforge::gender::SynthDomain::studio;
        if (*full_size) run.use_full_size();
        const auto summary = onnxforge::gender::generate_synthetic_faces(run);
        fmt::print(
            "synth: wrote {} images ({} train, {} val, {} test; {:.1f} MB) to {} in {:.1f} s "
            "({:.0f} images/s)\n",
            summary.images, run.train, run.val, run.test, summary.bytes / 1e6, run.out.string(),
            summary.seconds, summary.images / std::max(summary.seconds, 1e-9));
      });
    }};

}  // namespace
