// The one finite-difference gradient checker: a case of the catalogue (op_cases.hpp), converted to
// f64, on the reference backend. With a random seed gradient R on its output, backward gives the
// gradient of L = sum(R * Y) with respect to every floating input (not labels) and trainable
// parameter; it is compared with central differences (L(x+h) - L(x-h)) / 2h, h = the case's
// fd_step, every element of small tensors and an even sample of 48 of large ones. Elements where
// the one-sided differences disagree sit on a kink (ReLU at 0, a max-pool tie) and are skipped,
// as Caffe's GradientChecker does.
#pragma once

#include <string>
#include <vector>

#include "tests/support/op_cases.hpp"

namespace onnxforge::testing {

struct GradientCheck {
  int checked = 0, skipped = 0;       // skipped: on a kink
  double worst = 0.0;                 // largest |analytic - numeric| / max(1, |numeric|)
  std::vector<std::string> failures;  // elements beyond the case's fd_tolerance
};

GradientCheck check_gradients(const OpCase& c);

}  // namespace onnxforge::testing
