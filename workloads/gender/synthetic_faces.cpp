#include "workloads/gender/synthetic_faces.hpp"

#include <fmt/format.h>

#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "core/error.hpp"
#include "data/parallel.hpp"
#include "data/rng.hpp"

namespace onnxforge::gender {

using data::derive_seed;
using data::mix64;
using data::Rng;
namespace fs = std::filesystem;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kShift = 4;  // sub-pixel bits for OpenCV drawing
constexpr double kOne = 1 << kShift;

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

cv::Scalar mix(const cv::Scalar& a, const cv::Scalar& b, double t) { return a * (1.0 - t) + b * t; }

cv::Scalar scaled(const cv::Scalar& c, double f) {
  return cv::Scalar(std::clamp(c[0] * f, 0.0, 255.0), std::clamp(c[1] * f, 0.0, 255.0),
                    std::clamp(c[2] * f, 0.0, 255.0));
}

cv::Scalar jitter(Rng& rng, const cv::Scalar& c, double amount) {
  return cv::Scalar(std::clamp(c[0] + rng.uniform(-amount, amount), 0.0, 255.0),
                    std::clamp(c[1] + rng.uniform(-amount, amount), 0.0, 255.0),
                    std::clamp(c[2] + rng.uniform(-amount, amount), 0.0, 255.0));
}

template <std::size_t N>
cv::Scalar pick(Rng& rng, const std::array<cv::Scalar, N>& palette) {
  return palette[rng.below(N)];
}

// Index from cumulative-free weights.
template <std::size_t N>
int choose(Rng& rng, const std::array<double, N>& weights) {
  double total = 0.0;
  for (double w : weights) total += w;
  double u = rng.uniform() * total;
  for (std::size_t i = 0; i < N; ++i) {
    if (u < weights[i]) return static_cast<int>(i);
    u -= weights[i];
  }
  return static_cast<int>(N - 1);
}

// Face-local coordinates (origin at the face centre, y down, pixels) to canvas coordinates,
// with roll and a yaw that shifts points by their depth.
struct Frame {
  cv::Point2d centre;
  double cos_roll = 1.0, sin_roll = 0.0;
  double yaw = 0.0;  // fraction of the head half-width a feature of depth 1 moves sideways
  double a = 1.0;    // head half-width

  cv::Point2d map(double x, double y, double depth = 0.0) const {
    x += yaw * a * depth;
    return {centre.x + cos_roll * x - sin_roll * y, centre.y + sin_roll * x + cos_roll * y};
  }
  cv::Point fixed(double x, double y, double depth = 0.0) const {
    const cv::Point2d p = map(x, y, depth);
    return {static_cast<int>(std::lround(p.x * kOne)), static_cast<int>(std::lround(p.y * kOne))};
  }
  double roll_degrees() const { return std::atan2(sin_roll, cos_roll) * 180.0 / kPi; }
};

struct Painter {
  cv::Mat& img;
  const Frame& f;

  void poly(const std::vector<cv::Point2d>& local, const cv::Scalar& colour,
            double depth = 0.0) const {
    std::vector<cv::Point> pts;
    pts.reserve(local.size());
    for (const auto& p : local) pts.push_back(f.fixed(p.x, p.y, depth));
    cv::fillPoly(img, std::vector<std::vector<cv::Point>>{pts}, colour, cv::LINE_AA, kShift);
  }
  void polyline(const std::vector<cv::Point2d>& local, const cv::Scalar& colour, double thickness,
                double depth = 0.0, bool closed = false) const {
    std::vector<cv::Point> pts;
    for (const auto& p : local) pts.push_back(f.fixed(p.x, p.y, depth));
    cv::polylines(img, std::vector<std::vector<cv::Point>>{pts}, closed, colour,
                  std::max(1, static_cast<int>(std::lround(thickness))), cv::LINE_AA, kShift);
  }
  void ellipse(double x, double y, double ax, double ay, double angle, const cv::Scalar& colour,
               double thickness = -1, double depth = 0.0, double start = 0.0,
               double end = 360.0) const {
    const cv::Point c = f.fixed(x, y, depth);
    const cv::Size axes(std::max(1, static_cast<int>(std::lround(ax * kOne))),
                        std::max(1, static_cast<int>(std::lround(ay * kOne))));
    const int t =
        thickness < 0 ? cv::FILLED : std::max(1, static_cast<int>(std::lround(thickness)));
    cv::ellipse(img, c, axes, angle + f.roll_degrees(), start, end, colour, t, cv::LINE_AA, kShift);
  }
  void line(double x0, double y0, double x1, double y1, const cv::Scalar& colour, double thickness,
            double depth = 0.0) const {
    cv::line(img, f.fixed(x0, y0, depth), f.fixed(x1, y1, depth), colour,
             std::max(1, static_cast<int>(std::lround(thickness))), cv::LINE_AA, kShift);
  }
};

// Points of an arc of the ellipse (ax, ay) centred at (x, y), angles in degrees.
void arc(std::vector<cv::Point2d>& out, double x, double y, double ax, double ay, double from,
         double to, int steps) {
  for (int i = 0; i <= steps; ++i) {
    const double t = (from + (to - from) * i / steps) * kPi / 180.0;
    out.emplace_back(x + ax * std::cos(t), y + ay * std::sin(t));
  }
}

// Fast noise with unit variance: the sum of two 16-bit uniforms (a triangular distribution).
double quick_noise(std::uint32_t bits) {
  const double sum = static_cast<double>(bits & 0xFFFF) + static_cast<double>(bits >> 16);
  return (sum / 65535.0 - 1.0) * 2.449489742783178;  // var of the sum of 2 U(0,1) = 1/6
}

void draw_background(cv::Mat& img, Rng& rng, SynthDomain domain) {
  const int w = img.cols, h = img.rows;
  if (domain == SynthDomain::studio) {
    static const std::array<cv::Scalar, 7> studio = {
        cv::Scalar(235, 235, 235), cv::Scalar(200, 200, 200), cv::Scalar(150, 150, 150),
        cv::Scalar(200, 170, 140), cv::Scalar(170, 200, 215), cv::Scalar(90, 90, 95),
        cv::Scalar(220, 210, 200)};
    const cv::Scalar base = jitter(rng, pick(rng, studio), 20);
    const double slope = rng.uniform(-0.15, 0.15);
    for (int y = 0; y < h; ++y) {
      img.row(y).setTo(scaled(base, 1.0 + slope * (2.0 * y / h - 1.0)));
    }
    return;
  }
  const int kind = choose<4>(rng, {0.3, 0.35, 0.2, 0.15});
  if (kind == 0) {  // outdoors: sky over ground, horizon somewhere
    const cv::Scalar sky = jitter(rng, cv::Scalar(230, 190, 150), 30);
    const cv::Scalar ground =
        jitter(rng,
               pick<4>(rng, {cv::Scalar(60, 120, 70), cv::Scalar(70, 100, 120),
                             cv::Scalar(110, 110, 110), cv::Scalar(40, 80, 60)}),
               25);
    const int horizon = static_cast<int>(h * rng.uniform(0.45, 0.85));
    for (int y = 0; y < h; ++y) {
      img.row(y).setTo(y < horizon ? scaled(sky, 1.0 + 0.2 * y / h) : ground);
    }
    for (int i = rng.range(0, 5); i > 0; --i) {  // trees, buildings
      const int x0 = rng.range(0, w - 1);
      const int bw = rng.range(w / 12, w / 3);
      const int top = rng.range(h / 6, horizon);
      cv::rectangle(img, cv::Rect(x0, top, bw, horizon - top + 1),
                    jitter(rng, cv::Scalar(70, 90, 80), 40), cv::FILLED);
    }
  } else if (kind == 1) {  // indoors: a wall with furniture, frames, shelves
    img.setTo(jitter(rng, cv::Scalar(170, 180, 190), 50));
    for (int i = rng.range(4, 14); i > 0; --i) {
      const int x0 = rng.range(-w / 4, w - 1);
      const int y0 = rng.range(-h / 4, h - 1);
      const cv::Rect r(x0, y0, rng.range(w / 10, w / 2), rng.range(h / 10, h / 2));
      const cv::Scalar colour(rng.uniform(20, 240), rng.uniform(20, 240), rng.uniform(20, 240));
      if (rng.chance(0.7)) {
        cv::rectangle(img, r, colour, cv::FILLED);
      } else {
        cv::circle(img, (r.tl() + r.br()) / 2, r.width / 2, colour, cv::FILLED, cv::LINE_AA);
      }
    }
  } else if (kind == 2) {  // night / bokeh lights
    img.setTo(jitter(rng, cv::Scalar(40, 35, 35), 20));
    for (int i = rng.range(6, 20); i > 0; --i) {
      cv::circle(img, cv::Point(rng.range(0, w - 1), rng.range(0, h - 1)),
                 rng.range(std::max(2, w / 40), std::max(3, w / 10)),
                 cv::Scalar(rng.uniform(60, 255), rng.uniform(60, 255), rng.uniform(80, 255)),
                 cv::FILLED, cv::LINE_AA);
    }
  } else {  // a saturated backdrop
    img.setTo(cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)));
  }
  // Depth of field: blur at a quarter of the resolution (cheap), then scale back up.
  const double sigma = rng.uniform(1.0, 0.03 * std::min(w, h) + 1.5);
  cv::Mat small;
  cv::resize(img, small, cv::Size(std::max(1, w / 4), std::max(1, h / 4)), 0, 0, cv::INTER_AREA);
  cv::GaussianBlur(small, small, cv::Size(0, 0), std::max(0.5, sigma / 4));
  cv::resize(small, img, img.size(), 0, 0, cv::INTER_LINEAR);
}

cv::Mat draw_face(Rng& rng, int gender, SynthDomain domain, int out_w, int out_h) {
  const bool wild = domain == SynthDomain::wild;
  const bool male = gender == 1;
  // Masculinity: overlapping between the classes, drives most gendered cues.
  const double m = (male ? 0.9 : -0.9) + rng.normal(0.0, 0.75);
  const double age = rng.uniform();

  // Canvas: render at about 200 px on the short side, then shrink (anti-aliased).
  const double k = std::clamp(200.0 / std::min(out_w, out_h), 1.0, 3.2);
  const int cw = static_cast<int>(std::lround(out_w * k));
  const int ch = static_cast<int>(std::lround(out_h * k));
  cv::Mat img(ch, cw, CV_8UC3);
  draw_background(img, rng, domain);

  const double u = std::min(cw, ch) * (wild ? rng.uniform(0.6, 1.0) : rng.uniform(0.88, 1.08));
  Frame f;
  f.centre = wild ? cv::Point2d(cw * rng.uniform(0.38, 0.62), ch * rng.uniform(0.42, 0.6))
                  : cv::Point2d(cw * 0.5 + rng.normal(0, 3.0), ch * 0.52 + rng.normal(0, 3.0));
  const double roll = (wild ? rng.normal(0, 9.0) : rng.normal(0, 4.5)) * kPi / 180.0;
  f.cos_roll = std::cos(roll);
  f.sin_roll = std::sin(roll);
  f.yaw = std::clamp(rng.normal(0, wild ? 0.22 : 0.12), -0.45, 0.45);

  // --- attributes ---------------------------------------------------------------------------
  const double jaw = sigmoid(1.3 * m + rng.normal(0, 0.7));  // 0 soft/pointed .. 1 square
  const double a = u * (0.28 + 0.025 * jaw + rng.normal(0, 0.012));
  const double b = u * (0.385 + rng.normal(0, 0.016));
  f.a = a;
  Painter p{img, f};

  static const std::array<cv::Scalar, 6> skin_palette = {
      cv::Scalar(200, 218, 248), cv::Scalar(165, 192, 232), cv::Scalar(125, 163, 212),
      cv::Scalar(88, 125, 178),  cv::Scalar(58, 88, 132),   cv::Scalar(38, 58, 88)};
  const double tone = wild ? std::clamp(rng.uniform(-0.05, 1.0), 0.0, 0.999)
                           : std::clamp(rng.uniform(0.0, 0.9) + 0.04 * m, 0.0, 0.999);
  const double pos = tone * (skin_palette.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  cv::Scalar skin =
      mix(skin_palette[lo], skin_palette[std::min(lo + 1, skin_palette.size() - 1)], pos - lo);
  skin = jitter(rng, skin + cv::Scalar(-2 * m, 0, 3 * m), 8);
  const cv::Scalar skin_shadow = scaled(skin, 0.82);
  const cv::Scalar skin_dark = scaled(skin, 0.62);

  static const std::array<cv::Scalar, 8> hair_palette = {
      cv::Scalar(18, 18, 22),    cv::Scalar(25, 35, 55),    cv::Scalar(35, 60, 95),
      cv::Scalar(60, 95, 140),   cv::Scalar(110, 170, 215), cv::Scalar(35, 70, 150),
      cv::Scalar(150, 150, 155), cv::Scalar(215, 215, 215)};
  int hair_index = choose<8>(rng, {0.28, 0.25, 0.18, 0.1, male ? 0.07 : 0.14, 0.04, 0.0, 0.0});
  if (age > 0.82 && rng.chance(0.7)) hair_index = rng.chance(0.6) ? 6 : 7;
  const cv::Scalar hair = jitter(rng, hair_palette[static_cast<std::size_t>(hair_index)], 10);
  const cv::Scalar hair_dark = scaled(hair, 0.7);

  // Hair length: 0 bald, 1 buzz, 2 short, 3 medium (to the jaw), 4 long (past the shoulders).
  const double hair_shift = -1.1 * m + rng.normal(0, 0.6);
  int length;
  if (hair_shift > 0.9) {
    length = 4;
  } else if (hair_shift > 0.2) {
    length = 3;
  } else if (hair_shift > -0.9) {
    length = 2;
  } else if (hair_shift > -1.6) {
    length = 1;
  } else {
    length = 0;
  }
  if (!male && length == 0) length = 1;
  if (male && age > 0.7 && rng.chance(0.35)) length = std::min(length, 0 + rng.range(0, 2));
  const bool tied = length >= 3 && rng.chance(male ? 0.05 : 0.18);  // bun: looks short in front
  const bool curly = rng.chance(0.18);
  const bool bangs = length >= 2 && rng.chance(male ? 0.15 : 0.35);
  const double part = rng.uniform(-1.0, 1.0);
  const double volume =
      1.03 + (length >= 2 ? 0.07 : 0.0) + (curly ? 0.08 : 0.0) + rng.uniform(0.0, 0.04);
  const double hairline =
      -b * (bangs ? rng.uniform(0.3, 0.42)
                  : rng.uniform(0.5, 0.62) + (male && age > 0.55 ? rng.uniform(0.0, 0.2) : 0.0));

  // Facial hair (drawn gender only): 0 none, 1 stubble, 2 moustache, 3 goatee, 4 full beard.
  int beard = 0;
  if (male && rng.chance(0.18 + 0.3 * sigmoid(1.5 * m))) {
    beard = 1 + choose<4>(rng, {0.35, 0.2, 0.2, 0.25});
  }
  const bool makeup = rng.chance(male ? 0.03 : 0.75 * sigmoid(-1.5 * m - 0.3) + 0.05);
  const bool glasses = rng.chance(wild ? 0.3 : 0.22);
  const bool sunglasses = glasses && rng.chance(wild ? 0.2 : 0.05);
  const bool earrings = rng.chance(male ? 0.06 : 0.45);

  // --- back hair, shoulders, neck -----------------------------------------------------------
  if (length >= 3 && !tied) {
    const double bottom = length == 4 ? b * rng.uniform(1.3, 2.3) : b * rng.uniform(0.45, 0.8);
    const double spread = a * (length == 4 ? rng.uniform(1.15, 1.5) : rng.uniform(1.08, 1.25));
    std::vector<cv::Point2d> pts;
    arc(pts, 0, -0.05 * b, a * volume * 1.04, b * volume, 180, 360, 24);
    const int steps = 10;
    for (int i = 0; i <= steps; ++i) {  // right side down
      const double t = static_cast<double>(i) / steps;
      const double wave = curly ? 0.08 * a * std::sin(t * 9.0) : 0.0;
      pts.emplace_back(a * volume * 1.04 + (spread - a * volume * 1.04) * t + wave,
                       -0.05 * b + (bottom + 0.05 * b) * t);
    }
    for (int i = 0; i <= steps; ++i) {  // uneven bottom edge
      const double t = static_cast<double>(i) / steps;
      pts.emplace_back(spread * (1.0 - 2.0 * t),
                       bottom + (curly ? 0.06 : 0.03) * b * std::sin(t * 17.0 + part));
    }
    for (int i = 0; i <= steps; ++i) {  // left side up
      const double t = 1.0 - static_cast<double>(i) / steps;
      const double wave = curly ? 0.08 * a * std::sin(t * 9.0 + 1.0) : 0.0;
      pts.emplace_back(-(a * volume * 1.04 + (spread - a * volume * 1.04) * t) - wave,
                       -0.05 * b + (bottom + 0.05 * b) * t);
    }
    p.poly(pts, hair_dark, -0.2);
  }
  if (tied) p.ellipse(0, -b * 0.98, a * 0.38, a * 0.32, 0, hair_dark, -1, -0.2);

  const cv::Scalar clothes(rng.uniform(15, 235), rng.uniform(15, 235), rng.uniform(15, 235));
  const double shoulders = a * (1.55 + 0.3 * sigmoid(1.2 * m + rng.normal(0, 0.5)));
  p.ellipse(0, b * rng.uniform(1.5, 1.65), shoulders, b * 0.6, 0, clothes);
  const double neck = a * (0.44 + 0.12 * sigmoid(1.5 * m + rng.normal(0, 0.5)));
  p.poly({{-neck, 0.4 * b}, {neck, 0.4 * b}, {neck * 1.05, 1.25 * b}, {-neck * 1.05, 1.25 * b}},
         skin_shadow);
  if (rng.chance(male ? 0.2 : 0.5)) {  // open neckline
    const double depth = b * rng.uniform(1.15, 1.45);
    p.poly({{-neck * 1.3, 1.0 * b}, {neck * 1.3, 1.0 * b}, {0, depth}}, skin_shadow);
  }
  if (length == 4 && !tied) {  // strands falling in front of the shoulders
    for (int side = -1; side <= 1; side += 2) {
      const double x0 = side * a * 0.92;
      p.poly({{x0, 0.0},
              {x0 + side * a * 0.32, 0.0},
              {x0 + side * a * 0.5, b * 1.45},
              {x0 + side * a * 0.05, b * 1.35}},
             hair);
    }
  }

  // --- ears and head ------------------------------------------------------------------------
  for (int side = -1; side <= 1; side += 2) {
    p.ellipse(side * a * 0.98, 0.08 * b, a * 0.13, b * 0.17, 0, skin_shadow, -1, -0.5);
  }
  const double p_jaw = 2.0 + 0.9 * jaw;
  const double taper = 0.2 * (1.0 - jaw);
  std::vector<cv::Point2d> head;
  for (int i = 0; i < 72; ++i) {
    const double t = 2.0 * kPi * i / 72;
    const double c = std::cos(t), s = std::sin(t);
    const double e = s > 0 ? 2.0 / p_jaw : 2.0 / 2.1;
    double x = a * std::copysign(std::pow(std::abs(c), e), c);
    const double y = b * std::copysign(std::pow(std::abs(s), e), s);
    if (s > 0) x *= 1.0 - taper * s * s * s;
    head.emplace_back(x, y);
  }
  // A darker rim, then the lit face slightly inside it, offset away from the turned side.
  p.poly(head, mix(skin, skin_shadow, 0.6));
  {
    const double shrink = rng.uniform(0.9, 0.95);
    const double offset = -f.yaw * a * 0.25;
    std::vector<cv::Point2d> lit;
    for (const auto& q : head) lit.emplace_back(q.x * shrink + offset, q.y * (shrink + 0.03));
    p.poly(lit, skin);
  }
  if (makeup && rng.chance(0.6)) {
    const cv::Scalar blush = mix(skin, cv::Scalar(120, 110, 230), 0.25);
    for (int side = -1; side <= 1; side += 2) {
      p.ellipse(side * a * 0.5, 0.25 * b, a * 0.17, b * 0.09, 0, blush, -1, 0.2);
    }
  }
  if (age > 0.75) {  // forehead lines
    for (int i = 0; i < 2; ++i) {
      p.ellipse(0, -0.38 * b + i * 0.07 * b, a * 0.35, b * 0.05, 0, skin_shadow, 1, 0.2, 200, 340);
    }
  }

  // --- facial hair ----------------------------------------------------------------------------
  const double mouth_y = b * rng.uniform(0.5, 0.6);
  const cv::Scalar beard_colour = beard == 1 ? mix(skin, hair, 0.35) : hair;
  if (beard == 1 || beard == 4) {
    std::vector<cv::Point2d> pts;
    for (const auto& q : head) {
      if (q.y > 0.12 * b) pts.emplace_back(q.x * 1.02, q.y * (beard == 4 ? 1.08 : 1.0));
    }
    std::sort(pts.begin(), pts.end(), [](const auto& l, const auto& r) { return l.x > r.x; });
    pts.emplace_back(-a * 0.75, 0.3 * b);
    pts.emplace_back(-a * 0.35, mouth_y - 0.08 * b);
    pts.emplace_back(a * 0.35, mouth_y - 0.08 * b);
    pts.emplace_back(a * 0.75, 0.3 * b);
    p.poly(pts, beard_colour, 0.1);
  } else if (beard == 3) {
    p.ellipse(0, mouth_y + 0.25 * b, a * 0.25, b * 0.22, 0, beard_colour, -1, 0.2);
  }

  // --- eyes and brows -------------------------------------------------------------------------
  const double eye_y = -b * rng.uniform(0.02, 0.1);
  const double eye_dx = a * rng.uniform(0.36, 0.44);
  const double eye_w = a * (0.19 - 0.02 * sigmoid(1.2 * m) + rng.normal(0, 0.012));
  const double eye_h = eye_w * rng.uniform(0.38, 0.55);
  static const std::array<cv::Scalar, 5> iris_palette = {
      cv::Scalar(30, 60, 100), cv::Scalar(20, 28, 40), cv::Scalar(160, 120, 60),
      cv::Scalar(80, 130, 70), cv::Scalar(50, 100, 125)};
  const cv::Scalar iris = jitter(rng, pick(rng, iris_palette), 12);
  const double gaze = rng.uniform(-0.25, 0.25) * eye_w;
  const double brow_gap = eye_h * (1.6 + 0.6 * sigmoid(-1.2 * m + rng.normal(0, 0.5)));
  const double brow_thick = a * (0.035 + 0.035 * sigmoid(1.4 * m + rng.normal(0, 0.6)));
  const double arch = 0.3 + 0.6 * sigmoid(-1.2 * m + rng.normal(0, 0.6));
  const cv::Scalar brow_colour = hair_index >= 6 ? scaled(hair, 0.6) : hair_dark;
  for (int side = -1; side <= 1; side += 2) {
    const double ex = side * eye_dx;
    if (makeup) {
      p.ellipse(ex, eye_y - eye_h * 0.5, eye_w * 1.1, eye_h * 1.1, 0,
                mix(skin, jitter(rng, cv::Scalar(120, 80, 110), 40), 0.35), -1, 0.2);
    }
    p.ellipse(ex, eye_y, eye_w, eye_h, 0, cv::Scalar(235, 238, 240), -1, 0.2);
    p.ellipse(ex + gaze, eye_y, eye_h * 0.85, eye_h * 0.85, 0, iris, -1, 0.25);
    p.ellipse(ex + gaze, eye_y, eye_h * 0.38, eye_h * 0.38, 0, cv::Scalar(15, 15, 15), -1, 0.25);
    const double lid = makeup ? std::max(2.0, a * 0.035) : std::max(1.0, a * 0.018);
    p.ellipse(ex, eye_y, eye_w, eye_h, 0, cv::Scalar(25, 25, 30), lid, 0.2, 180, 360);
    p.ellipse(ex, eye_y, eye_w, eye_h, 0, skin_dark, 1, 0.2, 0, 180);
    if (makeup) {  // winged liner / lashes at the outer corner
      p.line(ex + side * eye_w, eye_y, ex + side * eye_w * 1.3, eye_y - eye_h * 0.5,
             cv::Scalar(20, 20, 25), lid, 0.2);
    }
    std::vector<cv::Point2d> brow;
    for (int i = 0; i <= 8; ++i) {
      const double t = i / 8.0;  // inner .. outer
      const double x = ex + side * eye_w * (-1.0 + 2.3 * t);
      const double y = eye_y - brow_gap - arch * eye_h * std::sin(t * kPi * 0.85) +
                       (t > 0.85 ? 0.3 * eye_h : 0.0) * arch;
      brow.emplace_back(x, y);
    }
    p.polyline(brow, brow_colour, brow_thick, 0.2);
  }

  // --- nose -----------------------------------------------------------------------------------
  const double nose_len = b * (0.28 + 0.04 * sigmoid(m) + rng.normal(0, 0.02));
  const double nose_w = a * (0.16 + 0.05 * sigmoid(1.2 * m) + rng.normal(0, 0.015));
  const double nose_y = eye_y + nose_len;
  p.line(eye_dx * 0.25, eye_y + 0.05 * b, nose_w * 0.45, nose_y - 0.05 * b,
         mix(skin, skin_shadow, 0.7), std::max(1.0, a * 0.02), 0.4);
  p.ellipse(0, nose_y, nose_w, nose_w * 0.45, 0, skin_shadow, std::max(1.0, a * 0.025), 0.45, 20,
            160);
  for (int side = -1; side <= 1; side += 2) {
    p.ellipse(side * nose_w * 0.45, nose_y + nose_w * 0.05, nose_w * 0.2, nose_w * 0.12, 0,
              skin_dark, -1, 0.45);
  }

  // --- mouth ------------------------------------------------------------------------------------
  const double mouth_w = a * (0.34 + rng.normal(0, 0.03) + 0.02 * m);
  const double fullness = 0.55 + 0.45 * sigmoid(-1.3 * m + rng.normal(0, 0.6));
  const double lip_h = b * 0.05 * fullness;
  const double smile = rng.uniform(-0.3, 1.0);
  cv::Scalar lip = mix(skin, cv::Scalar(90, 90, 170), 0.3);
  if (makeup && rng.chance(0.7)) {
    static const std::array<cv::Scalar, 5> lipstick = {
        cv::Scalar(45, 40, 185), cv::Scalar(130, 100, 220), cv::Scalar(70, 30, 130),
        cv::Scalar(110, 135, 200), cv::Scalar(80, 105, 225)};
    lip = mix(skin, jitter(rng, pick(rng, lipstick), 15), rng.uniform(0.55, 0.9));
  }
  {
    std::vector<cv::Point2d> upper, lower;
    for (int i = 0; i <= 12; ++i) {
      const double t = -1.0 + 2.0 * i / 12;
      const double curve = -smile * lip_h * 0.6 * t * t;
      upper.emplace_back(
          mouth_w * t,
          mouth_y + curve - lip_h * (1.0 - t * t) * (1.0 - 0.35 * std::exp(-20 * t * t)));
      lower.emplace_back(mouth_w * t, mouth_y + curve + 1.3 * lip_h * (1.0 - t * t));
    }
    std::vector<cv::Point2d> outline = upper;
    outline.insert(outline.end(), lower.rbegin(), lower.rend());
    p.poly(outline, lip, 0.25);
    std::vector<cv::Point2d> seam;
    for (int i = 0; i <= 12; ++i) {
      const double t = -1.0 + 2.0 * i / 12;
      seam.emplace_back(mouth_w * t, mouth_y - smile * lip_h * 0.6 * t * t);
    }
    p.polyline(seam, scaled(lip, 0.45), std::max(1.0, a * 0.015), 0.25);
  }
  if (beard == 2 || beard == 3 || (beard == 4 && rng.chance(0.8))) {  // moustache
    std::vector<cv::Point2d> pts;
    arc(pts, 0, mouth_y + 0.02 * b, mouth_w * 1.1, 0.16 * b, 200, 340, 12);
    p.polyline(pts, hair, std::max(2.0, b * 0.07), 0.3);
  }

  // --- front hair -------------------------------------------------------------------------------
  if (length >= 1) {
    std::vector<cv::Point2d> cap;
    const double side_len = length >= 3 ? 0.45 * b : 0.05 * b;  // how far hair covers the sides
    arc(cap, 0, 0, a * volume, b * volume, 170, 370, 30);
    cap.emplace_back(a * volume, side_len);
    cap.emplace_back(a * 0.9, side_len);
    const int steps = 16;
    for (int i = 0; i <= steps; ++i) {  // hairline from the right temple to the left
      const double t = 1.0 - 2.0 * i / steps;
      double y =
          hairline + (-0.12 * b - hairline) * std::pow(std::abs(t), 2.5) + 0.12 * b * part * t;
      if (bangs) y += 0.03 * b * std::sin(i * 2.3);
      if (male && age > 0.55 && !bangs)
        y -= 0.1 * b * std::exp(-std::pow((std::abs(t) - 0.6) * 4, 2));
      cap.emplace_back(a * 0.9 * t, y);
    }
    cap.emplace_back(-a * 0.9, side_len);
    cap.emplace_back(-a * volume, side_len);
    const cv::Scalar colour = length == 1 ? mix(skin, hair, 0.6) : hair;
    p.poly(cap, colour, 0.0);
    if (length >= 2) {  // a few strands for texture
      for (int i = 0; i < 6; ++i) {
        const double x = a * rng.uniform(-0.7, 0.7);
        p.line(x, -b * 0.9, x + part * a * 0.2, hairline * 0.9, hair_dark, 1, 0.0);
      }
    }
  } else if (rng.chance(0.7)) {  // bald with hair at the sides
    for (int side = -1; side <= 1; side += 2) {
      p.ellipse(side * a * 0.93, -0.12 * b, a * 0.12, b * 0.2, 0, mix(skin, hair, 0.6), -1, 0.0);
    }
  }

  // --- glasses, earrings ------------------------------------------------------------------------
  if (glasses) {
    static const std::array<cv::Scalar, 4> frames = {cv::Scalar(20, 20, 20), cv::Scalar(30, 50, 80),
                                                     cv::Scalar(60, 150, 190),
                                                     cv::Scalar(170, 170, 170)};
    const cv::Scalar frame = pick(rng, frames);
    const double t = std::max(1.0, a * rng.uniform(0.02, 0.045));
    const double gw = eye_w * rng.uniform(1.35, 1.6);
    const double gh = eye_h * rng.uniform(1.9, 2.6);
    for (int side = -1; side <= 1; side += 2) {
      const double gx = side * eye_dx;
      if (sunglasses) p.ellipse(gx, eye_y + gh * 0.1, gw, gh, 0, cv::Scalar(25, 20, 20), -1, 0.3);
      p.ellipse(gx, eye_y + gh * 0.1, gw, gh, 0, frame, t, 0.3);
      p.line(gx + side * gw, eye_y, side * a * 0.98, eye_y - 0.02 * b, frame, t, 0.0);
    }
    p.line(-eye_dx + gw, eye_y, eye_dx - gw, eye_y, frame, t, 0.3);
  }
  if (earrings && length < 4) {
    const cv::Scalar metal = rng.chance(0.6) ? cv::Scalar(60, 180, 220) : cv::Scalar(200, 200, 205);
    const bool hoop = rng.chance(0.4);
    for (int side = -1; side <= 1; side += 2) {
      p.ellipse(side * a * 1.0, 0.3 * b, a * (hoop ? 0.1 : 0.045), a * (hoop ? 0.1 : 0.045), 0,
                metal, hoop ? std::max(1.0, a * 0.025) : -1, -0.5);
    }
  }
  return img;
}

// Light, colour temperature and exposure; stronger in the wild domain.
void apply_lighting(cv::Mat& img, Rng& rng, SynthDomain domain) {
  const bool wild = domain == SynthDomain::wild;
  const double strength = wild ? rng.uniform(0.1, 0.55) : rng.uniform(0.0, 0.2);
  const double dir = rng.uniform(0.0, 2.0 * kPi);
  const double exposure = wild ? rng.uniform(0.6, 1.3) : rng.uniform(0.88, 1.1);
  const double warm = wild ? rng.uniform(-0.18, 0.18) : rng.uniform(-0.05, 0.05);
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

}  // namespace

std::vector<std::uint8_t> render_synthetic_face(std::uint64_t image_seed, int label,
                                                SynthDomain domain) {
  Rng rng(image_seed);
  const bool wild = domain == SynthDomain::wild;
  int out_w = 100, out_h = 100;
  if (wild) {
    out_w = rng.range(64, 300);
    double aspect = rng.uniform(0.72, 1.35);
    if (std::abs(aspect - 1.0) < 0.05) aspect = aspect < 1.0 ? 0.93 : 1.07;
    out_h = std::clamp(static_cast<int>(std::lround(out_w * aspect)), 64, 300);
    if (out_h == out_w) out_h = out_w < 300 ? out_w + 1 : out_w - 1;
  }
  cv::Mat canvas = draw_face(rng, label, domain, out_w, out_h);
  apply_lighting(canvas, rng, domain);
  cv::Mat out;
  cv::resize(canvas, out, cv::Size(out_w, out_h), 0, 0, cv::INTER_AREA);
  const double blur = wild ? rng.uniform(0.0, 1.8) : rng.uniform(0.0, 0.9);
  if (blur > 0.3) cv::GaussianBlur(out, out, cv::Size(0, 0), blur);
  const double noise = wild ? rng.uniform(2.0, 12.0) : rng.uniform(0.0, 5.0);
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
  if (rng.chance(wild ? 0.06 : 0.02)) {
    cv::Mat grey;
    cv::cvtColor(out, grey, cv::COLOR_BGR2GRAY);
    cv::cvtColor(grey, out, cv::COLOR_GRAY2BGR);
  }
  const int quality = wild ? rng.range(30, 90) : rng.range(70, 95);
  std::vector<std::uint8_t> bytes;
  cv::imencode(".jpg", out, bytes, {cv::IMWRITE_JPEG_QUALITY, quality});
  return bytes;
}

namespace {

// What a complete set was generated with (the file OUT/onnxforge-synth.txt).
std::string marker_text(const SynthOptions& options) {
  return fmt::format("onnxforge synth v1\nseed={}\ntrain={}\nval={}\ntest={}\nlabel_noise={}\n",
                     options.seed, options.train, options.val, options.test, options.label_noise);
}

}  // namespace

SynthSummary generate_synthetic_faces(const SynthOptions& options) {
  if (options.out.empty()) throw Error("synth: no output folder given");
  if (options.train < 2 || options.val < 2 || options.test < 2) {
    throw Error(
        fmt::format("synth: --train, --val and --test must each be at least 2 (got {}, {}, {})",
                    options.train, options.val, options.test));
  }
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

  struct Job {
    fs::path dir;
    int label;
    SynthDomain domain;
    std::uint64_t seed;
  };
  std::vector<Job> jobs;
  auto add = [&](const fs::path& root, const char* female, const char* male, int count,
                 SynthDomain domain, std::uint64_t split) {
    fs::create_directories(root / female);
    fs::create_directories(root / male);
    for (int i = 0; i < count; ++i) {
      const int label = i % 2;  // balanced: female at even indices
      jobs.push_back({root / (label == 0 ? female : male) / fmt::format("{:06d}.jpg", i), label,
                      domain, derive_seed(options.seed, split, static_cast<std::uint64_t>(i))});
    }
  };
  add(options.out / "gender" / "train", "Female", "Male", options.train, SynthDomain::studio, 1);
  add(options.out / "gender" / "test", "Female", "Male", options.val, SynthDomain::studio, 2);
  add(options.out / "faces", "woman", "man", options.test, SynthDomain::wild, 3);

  std::atomic<std::size_t> bytes{0};
  std::vector<std::string> errors(jobs.size());
  const auto start = std::chrono::steady_clock::now();
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  tbb::task_arena arena(threads);
  arena.execute([&] {
    data::detail::parallel_for(jobs.size(), 8, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i != end; ++i) {
        const Job& job = jobs[i];
        // The drawn gender; about 2% of the labels are wrong on purpose.
        Rng flip(derive_seed(job.seed, 0xf11b));
        const int drawn = flip.chance(options.label_noise) ? 1 - job.label : job.label;
        const auto data = render_synthetic_face(job.seed, drawn, job.domain);
        std::ofstream file(job.dir, std::ios::binary);
        file.write(reinterpret_cast<const char*>(data.data()),
                   static_cast<std::streamsize>(data.size()));
        if (!file) errors[i] = "cannot write " + job.dir.string();
        bytes += data.size();
      }
    });
  });
  for (const auto& error : errors) {
    if (!error.empty()) throw Error("synth: " + error);
  }
  SynthSummary summary;
  summary.images = jobs.size();
  summary.bytes = bytes.load();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ofstream(marker) << marker_text(options);
  return summary;
}

bool synthetic_faces_ready(const SynthOptions& options) {
  std::ifstream file(options.out / "onnxforge-synth.txt");
  if (!file) return false;
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return text == marker_text(options) && fs::is_directory(options.out / "gender" / "train") &&
         fs::is_directory(options.out / "gender" / "test") &&
         fs::is_directory(options.out / "faces");
}

}  // namespace onnxforge::gender
