// The drawing of one synthetic face, inside the gender workload only: background, body, head,
// hair, eyes, nose, mouth and accessories from sampled attributes, at about 200 px on the short
// side. synthetic_faces.cpp adds the camera (lighting, resizing, blur, noise, JPEG).
#pragma once

#include <opencv2/core.hpp>

#include "data/rng.hpp"
#include "workloads/gender/synthetic_faces.hpp"

namespace onnxforge::gender::detail {

inline constexpr double kPi = 3.14159265358979323846;

// The canvas for an out_w x out_h image: gender 0 = female, 1 = male. Every random draw comes
// from rng, in a fixed order: the synthetic data depend on it bit for bit.
// What was drawn goes into `attributes` (its gender, person, pose and background fields).
cv::Mat draw_face(data::Rng& rng, int gender, SynthDomain domain, int out_w, int out_h,
                  FaceAttributes& attributes);

}  // namespace onnxforge::gender::detail
