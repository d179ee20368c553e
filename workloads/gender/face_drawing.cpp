#include "workloads/gender/face_drawing.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <opencv2/imgproc.hpp>
#include <vector>

namespace onnxforge::gender::detail {

using data::Rng;

namespace {

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

// --- backgrounds --------------------------------------------------------------------------------

void draw_studio_backdrop(cv::Mat& img, Rng& rng) {
  static const std::array<cv::Scalar, 7> studio = {
      cv::Scalar(235, 235, 235), cv::Scalar(200, 200, 200), cv::Scalar(150, 150, 150),
      cv::Scalar(200, 170, 140), cv::Scalar(170, 200, 215), cv::Scalar(90, 90, 95),
      cv::Scalar(220, 210, 200)};
  const cv::Scalar base = jitter(rng, pick(rng, studio), 20);
  const double slope = rng.uniform(-0.15, 0.15);
  for (int y = 0; y < img.rows; ++y) {
    img.row(y).setTo(scaled(base, 1.0 + slope * (2.0 * y / img.rows - 1.0)));
  }
}

// Sky over ground, the horizon somewhere, trees or buildings on it.
void draw_outdoors(cv::Mat& img, Rng& rng) {
  const int w = img.cols, h = img.rows;
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
  for (int i = rng.range(0, 5); i > 0; --i) {
    const int x0 = rng.range(0, w - 1);
    const int bw = rng.range(w / 12, w / 3);
    const int top = rng.range(h / 6, horizon);
    cv::rectangle(img, cv::Rect(x0, top, bw, horizon - top + 1),
                  jitter(rng, cv::Scalar(70, 90, 80), 40), cv::FILLED);
  }
}

// A wall with furniture, frames, shelves.
void draw_indoors(cv::Mat& img, Rng& rng) {
  const int w = img.cols, h = img.rows;
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
}

// Night, bokeh lights.
void draw_night(cv::Mat& img, Rng& rng) {
  const int w = img.cols, h = img.rows;
  img.setTo(jitter(rng, cv::Scalar(40, 35, 35), 20));
  for (int i = rng.range(6, 20); i > 0; --i) {
    cv::circle(img, cv::Point(rng.range(0, w - 1), rng.range(0, h - 1)),
               rng.range(std::max(2, w / 40), std::max(3, w / 10)),
               cv::Scalar(rng.uniform(60, 255), rng.uniform(60, 255), rng.uniform(80, 255)),
               cv::FILLED, cv::LINE_AA);
  }
}

// Depth of field: blur at a quarter of the resolution (cheap), then scale back up.
void blur_depth_of_field(cv::Mat& img, Rng& rng) {
  const int w = img.cols, h = img.rows;
  const double sigma = rng.uniform(1.0, 0.03 * std::min(w, h) + 1.5);
  cv::Mat small;
  cv::resize(img, small, cv::Size(std::max(1, w / 4), std::max(1, h / 4)), 0, 0, cv::INTER_AREA);
  cv::GaussianBlur(small, small, cv::Size(0, 0), std::max(0.5, sigma / 4));
  cv::resize(small, img, img.size(), 0, 0, cv::INTER_LINEAR);
}

// Returns the kind drawn: 0 studio, 1 outdoors, 2 indoors, 3 night, 4 a saturated colour.
int draw_background(cv::Mat& img, Rng& rng, SynthDomain domain) {
  if (domain == SynthDomain::studio) {
    draw_studio_backdrop(img, rng);
    return 0;
  }
  const int kind = choose<4>(rng, {0.3, 0.35, 0.2, 0.15});
  if (kind == 0) {
    draw_outdoors(img, rng);
  } else if (kind == 1) {
    draw_indoors(img, rng);
  } else if (kind == 2) {
    draw_night(img, rng);
  } else {  // a saturated backdrop
    img.setTo(cv::Scalar(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)));
  }
  blur_depth_of_field(img, rng);
  return kind + 1;
}

// --- the person: what is drawn before any part is painted ---------------------------------------

struct Person {
  bool male = false;
  double m = 0.0;     // masculinity: overlapping between the classes, drives most gendered cues
  double age = 0.0;   // 0 .. 1
  double tone = 0.0;  // skin tone, 0 lightest .. 1 darkest
  double jaw = 0.0;   // 0 soft/pointed .. 1 square
  double a = 0.0;     // head half-width, px
  double b = 0.0;     // head half-height, px
  cv::Scalar skin, skin_shadow, skin_dark;
  int hair_index = 0;  // into hair_palette: 6 and 7 are grey and white
  cv::Scalar hair, hair_dark;
  int length = 0;     // 0 bald, 1 buzz, 2 short, 3 medium (to the jaw), 4 long (past the shoulders)
  bool tied = false;  // a bun: looks short in front
  bool curly = false;
  bool bangs = false;
  double part = 0.0;  // -1 .. 1
  double volume = 1.0;
  double hairline = 0.0;
  int beard = 0;  // drawn gender only: 0 none, 1 stubble, 2 moustache, 3 goatee, 4 full beard
  bool makeup = false;
  bool glasses = false;
  bool sunglasses = false;
  bool earrings = false;
};

Person sample_gender(Rng& rng, int gender) {
  Person person;
  person.male = gender == 1;
  person.m = (person.male ? 1.1 : -1.1) + rng.normal(0.0, 0.6);
  person.age = rng.uniform();
  return person;
}

// The canvas: about 200 px on the short side, shrunk to the image size later (anti-aliased).
cv::Mat blank_canvas(int out_w, int out_h) {
  const double k = std::clamp(200.0 / std::min(out_w, out_h), 1.0, 3.2);
  const int cw = static_cast<int>(std::lround(out_w * k));
  const int ch = static_cast<int>(std::lround(out_h * k));
  return cv::Mat(ch, cw, CV_8UC3);
}

// Where the face sits: its size unit u (the head is about 0.77 u high) and its pose.
struct Placement {
  double u = 0.0;
  Frame frame;
};

Placement place_face(Rng& rng, SynthDomain domain, int cw, int ch) {
  const bool wild = domain == SynthDomain::wild;
  Placement place;
  place.u = std::min(cw, ch) * (wild ? rng.uniform(0.72, 1.02) : rng.uniform(0.88, 1.08));
  Frame& f = place.frame;
  f.centre = wild ? cv::Point2d(cw * rng.uniform(0.43, 0.57), ch * rng.uniform(0.45, 0.58))
                  : cv::Point2d(cw * 0.5 + rng.normal(0, 3.0), ch * 0.52 + rng.normal(0, 3.0));
  const double roll = (wild ? rng.normal(0, 9.0) : rng.normal(0, 4.5)) * kPi / 180.0;
  f.cos_roll = std::cos(roll);
  f.sin_roll = std::sin(roll);
  f.yaw = std::clamp(rng.normal(0, wild ? 0.22 : 0.12), -0.45, 0.45);
  return place;
}

void sample_head_shape(Rng& rng, double u, Person& person) {
  person.jaw = sigmoid(1.3 * person.m + rng.normal(0, 0.7));
  person.a = u * (0.28 + 0.025 * person.jaw + rng.normal(0, 0.012));
  person.b = u * (0.385 + rng.normal(0, 0.016));
}

void sample_skin(Rng& rng, SynthDomain domain, Person& person) {
  static const std::array<cv::Scalar, 6> skin_palette = {
      cv::Scalar(200, 218, 248), cv::Scalar(165, 192, 232), cv::Scalar(125, 163, 212),
      cv::Scalar(88, 125, 178),  cv::Scalar(58, 88, 132),   cv::Scalar(38, 58, 88)};
  const double m = person.m;
  const double tone = domain == SynthDomain::wild ? std::clamp(rng.uniform(-0.05, 1.0), 0.0, 0.999)
                                                  : std::clamp(rng.uniform(0.0, 0.9), 0.0, 0.999);
  person.tone = tone;
  const double pos = tone * (skin_palette.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  cv::Scalar skin =
      mix(skin_palette[lo], skin_palette[std::min(lo + 1, skin_palette.size() - 1)], pos - lo);
  person.skin = jitter(rng, skin + cv::Scalar(-2 * m, 0, 3 * m), 8);
  person.skin_shadow = scaled(person.skin, 0.82);
  person.skin_dark = scaled(person.skin, 0.62);
}

void sample_hair_colour(Rng& rng, Person& person) {
  static const std::array<cv::Scalar, 8> hair_palette = {
      cv::Scalar(18, 18, 22),    cv::Scalar(25, 35, 55),    cv::Scalar(35, 60, 95),
      cv::Scalar(60, 95, 140),   cv::Scalar(110, 170, 215), cv::Scalar(35, 70, 150),
      cv::Scalar(150, 150, 155), cv::Scalar(215, 215, 215)};
  int hair_index = choose<8>(rng, {0.28, 0.25, 0.18, 0.1, 0.1, 0.04, 0.0, 0.0});
  if (person.age > 0.82 && rng.chance(0.7)) hair_index = rng.chance(0.6) ? 6 : 7;
  person.hair_index = hair_index;
  person.hair = jitter(rng, hair_palette[static_cast<std::size_t>(hair_index)], 10);
  person.hair_dark = scaled(person.hair, 0.7);
}

int hair_length_of(double hair_shift) {
  if (hair_shift > 0.9) return 4;
  if (hair_shift > 0.2) return 3;
  if (hair_shift > -0.9) return 2;
  if (hair_shift > -1.6) return 1;
  return 0;
}

void sample_hair_style(Rng& rng, Person& person) {
  const bool male = person.male;
  const double age = person.age;
  const double b = person.b;
  const double hair_shift = -1.1 * person.m + rng.normal(0, 0.6);
  int length = hair_length_of(hair_shift);
  if (!male && length == 0) length = 1;
  if (male && age > 0.7 && rng.chance(0.35)) length = std::min(length, 0 + rng.range(0, 2));
  person.length = length;
  person.tied = length >= 3 && rng.chance(male ? 0.05 : 0.18);
  person.curly = rng.chance(0.18);
  const bool bangs = length >= 2 && rng.chance(male ? 0.15 : 0.35);
  person.bangs = bangs;
  person.part = rng.uniform(-1.0, 1.0);
  person.volume =
      1.03 + (length >= 2 ? 0.07 : 0.0) + (person.curly ? 0.08 : 0.0) + rng.uniform(0.0, 0.04);
  person.hairline =
      -b * (bangs ? rng.uniform(0.3, 0.42)
                  : rng.uniform(0.5, 0.62) + (male && age > 0.55 ? rng.uniform(0.0, 0.2) : 0.0));
}

// Facial hair, makeup, glasses, earrings.
void sample_extras(Rng& rng, SynthDomain domain, Person& person) {
  const bool wild = domain == SynthDomain::wild;
  const bool male = person.male;
  if (male && rng.chance(0.18 + 0.3 * sigmoid(1.5 * person.m))) {
    person.beard = 1 + choose<4>(rng, {0.35, 0.2, 0.2, 0.25});
  }
  person.makeup = rng.chance(male ? 0.03 : 0.75 * sigmoid(-1.5 * person.m - 0.3) + 0.05);
  person.glasses = rng.chance(wild ? 0.3 : 0.22);
  person.sunglasses = person.glasses && rng.chance(wild ? 0.2 : 0.05);
  person.earrings = rng.chance(male ? 0.06 : 0.45);
}

// --- behind the head: back hair, shoulders, neck ------------------------------------------------

// Hair that falls behind the head down to `bottom`, as wide as `spread` at its lower end.
std::vector<cv::Point2d> back_hair_outline(const Person& person, double bottom, double spread) {
  const double a = person.a, b = person.b;
  const double top_w = a * person.volume * 1.04;
  std::vector<cv::Point2d> pts;
  arc(pts, 0, -0.05 * b, top_w, b * person.volume, 180, 360, 24);
  const int steps = 10;
  for (int i = 0; i <= steps; ++i) {  // right side down
    const double t = static_cast<double>(i) / steps;
    const double wave = person.curly ? 0.08 * a * std::sin(t * 9.0) : 0.0;
    pts.emplace_back(top_w + (spread - top_w) * t + wave, -0.05 * b + (bottom + 0.05 * b) * t);
  }
  for (int i = 0; i <= steps; ++i) {  // uneven bottom edge
    const double t = static_cast<double>(i) / steps;
    pts.emplace_back(spread * (1.0 - 2.0 * t),
                     bottom + (person.curly ? 0.06 : 0.03) * b * std::sin(t * 17.0 + person.part));
  }
  for (int i = 0; i <= steps; ++i) {  // left side up
    const double t = 1.0 - static_cast<double>(i) / steps;
    const double wave = person.curly ? 0.08 * a * std::sin(t * 9.0 + 1.0) : 0.0;
    pts.emplace_back(-(top_w + (spread - top_w) * t) - wave, -0.05 * b + (bottom + 0.05 * b) * t);
  }
  return pts;
}

void draw_back_hair(const Painter& p, Rng& rng, const Person& person) {
  const double a = person.a, b = person.b;
  if (person.length >= 3 && !person.tied) {
    const double bottom =
        person.length == 4 ? b * rng.uniform(1.3, 2.3) : b * rng.uniform(0.45, 0.8);
    const double spread =
        a * (person.length == 4 ? rng.uniform(1.15, 1.5) : rng.uniform(1.08, 1.25));
    p.poly(back_hair_outline(person, bottom, spread), person.hair_dark, -0.2);
  }
  if (person.tied) p.ellipse(0, -b * 0.98, a * 0.38, a * 0.32, 0, person.hair_dark, -1, -0.2);
}

// Shoulders in clothes, the neck, an open neckline, long hair falling in front of the shoulders.
// Returns the clothes' colour (BGR).
cv::Scalar draw_body(const Painter& p, Rng& rng, const Person& person) {
  const double a = person.a, b = person.b, m = person.m;
  const cv::Scalar clothes(rng.uniform(15, 235), rng.uniform(15, 235), rng.uniform(15, 235));
  const double shoulders = a * (1.55 + 0.3 * sigmoid(1.2 * m + rng.normal(0, 0.5)));
  p.ellipse(0, b * rng.uniform(1.5, 1.65), shoulders, b * 0.6, 0, clothes);
  const double neck = a * (0.44 + 0.12 * sigmoid(1.5 * m + rng.normal(0, 0.5)));
  p.poly({{-neck, 0.4 * b}, {neck, 0.4 * b}, {neck * 1.05, 1.25 * b}, {-neck * 1.05, 1.25 * b}},
         person.skin_shadow);
  if (rng.chance(person.male ? 0.2 : 0.5)) {  // open neckline
    const double depth = b * rng.uniform(1.15, 1.45);
    p.poly({{-neck * 1.3, 1.0 * b}, {neck * 1.3, 1.0 * b}, {0, depth}}, person.skin_shadow);
  }
  if (person.length == 4 && !person.tied) {  // strands falling in front of the shoulders
    for (int side = -1; side <= 1; side += 2) {
      const double x0 = side * a * 0.92;
      p.poly({{x0, 0.0},
              {x0 + side * a * 0.32, 0.0},
              {x0 + side * a * 0.5, b * 1.45},
              {x0 + side * a * 0.05, b * 1.35}},
             person.hair);
    }
  }
  return clothes;
}

// --- the head -----------------------------------------------------------------------------------

// A superellipse, squarer below with a square jaw, tapering to the chin with a soft one.
std::vector<cv::Point2d> head_outline(const Person& person) {
  const double p_jaw = 2.0 + 0.9 * person.jaw;
  const double taper = 0.2 * (1.0 - person.jaw);
  std::vector<cv::Point2d> head;
  for (int i = 0; i < 72; ++i) {
    const double t = 2.0 * kPi * i / 72;
    const double c = std::cos(t), s = std::sin(t);
    const double e = s > 0 ? 2.0 / p_jaw : 2.0 / 2.1;
    double x = person.a * std::copysign(std::pow(std::abs(c), e), c);
    const double y = person.b * std::copysign(std::pow(std::abs(s), e), s);
    if (s > 0) x *= 1.0 - taper * s * s * s;
    head.emplace_back(x, y);
  }
  return head;
}

// Ears, the face, blush, forehead lines.
void draw_head(const Painter& p, Rng& rng, const Person& person,
               const std::vector<cv::Point2d>& head) {
  const double a = person.a, b = person.b;
  for (int side = -1; side <= 1; side += 2) {
    p.ellipse(side * a * 0.98, 0.08 * b, a * 0.13, b * 0.17, 0, person.skin_shadow, -1, -0.5);
  }
  // A darker rim, then the lit face slightly inside it, offset away from the turned side.
  p.poly(head, mix(person.skin, person.skin_shadow, 0.6));
  {
    const double shrink = rng.uniform(0.9, 0.95);
    const double offset = -p.f.yaw * a * 0.25;
    std::vector<cv::Point2d> lit;
    for (const auto& q : head) lit.emplace_back(q.x * shrink + offset, q.y * (shrink + 0.03));
    p.poly(lit, person.skin);
  }
  if (person.makeup && rng.chance(0.6)) {
    const cv::Scalar blush = mix(person.skin, cv::Scalar(120, 110, 230), 0.25);
    for (int side = -1; side <= 1; side += 2) {
      p.ellipse(side * a * 0.5, 0.25 * b, a * 0.17, b * 0.09, 0, blush, -1, 0.2);
    }
  }
  if (person.age > 0.75) {  // forehead lines
    for (int i = 0; i < 2; ++i) {
      p.ellipse(0, -0.38 * b + i * 0.07 * b, a * 0.35, b * 0.05, 0, person.skin_shadow, 1, 0.2, 200,
                340);
    }
  }
}

// Stubble or a full beard along the lower head outline, or a goatee under the mouth.
void draw_facial_hair(const Painter& p, const Person& person, const std::vector<cv::Point2d>& head,
                      double mouth_y) {
  const double a = person.a, b = person.b;
  const int beard = person.beard;
  const cv::Scalar beard_colour = beard == 1 ? mix(person.skin, person.hair, 0.35) : person.hair;
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
}

// --- eyes and brows -----------------------------------------------------------------------------

struct Eyes {
  double y = 0.0;   // height of the eye centres
  double dx = 0.0;  // distance of each eye from the middle
  double w = 0.0, h = 0.0;
  cv::Scalar iris;
  double gaze = 0.0;
  double brow_gap = 0.0, brow_thick = 0.0, arch = 0.0;
};

Eyes sample_eyes(Rng& rng, const Person& person) {
  static const std::array<cv::Scalar, 5> iris_palette = {
      cv::Scalar(30, 60, 100), cv::Scalar(20, 28, 40), cv::Scalar(160, 120, 60),
      cv::Scalar(80, 130, 70), cv::Scalar(50, 100, 125)};
  const double a = person.a, m = person.m;
  Eyes e;
  e.y = -person.b * rng.uniform(0.02, 0.1);
  e.dx = a * rng.uniform(0.36, 0.44);
  e.w = a * (0.19 - 0.02 * sigmoid(1.2 * m) + rng.normal(0, 0.012));
  e.h = e.w * rng.uniform(0.38, 0.55);
  e.iris = jitter(rng, pick(rng, iris_palette), 12);
  e.gaze = rng.uniform(-0.25, 0.25) * e.w;
  e.brow_gap = e.h * (1.6 + 0.6 * sigmoid(-1.2 * m + rng.normal(0, 0.5)));
  e.brow_thick = a * (0.035 + 0.035 * sigmoid(1.4 * m + rng.normal(0, 0.6)));
  e.arch = 0.3 + 0.6 * sigmoid(-1.2 * m + rng.normal(0, 0.6));
  return e;
}

// One eye (side -1 or +1) with its makeup: shadow, white, iris, pupil, lids, liner.
void draw_eye(const Painter& p, Rng& rng, const Person& person, const Eyes& e, int side) {
  const double ex = side * e.dx;
  if (person.makeup) {
    p.ellipse(ex, e.y - e.h * 0.5, e.w * 1.1, e.h * 1.1, 0,
              mix(person.skin, jitter(rng, cv::Scalar(120, 80, 110), 40), 0.35), -1, 0.2);
  }
  p.ellipse(ex, e.y, e.w, e.h, 0, cv::Scalar(235, 238, 240), -1, 0.2);
  p.ellipse(ex + e.gaze, e.y, e.h * 0.85, e.h * 0.85, 0, e.iris, -1, 0.25);
  p.ellipse(ex + e.gaze, e.y, e.h * 0.38, e.h * 0.38, 0, cv::Scalar(15, 15, 15), -1, 0.25);
  const double lid =
      person.makeup ? std::max(2.0, person.a * 0.035) : std::max(1.0, person.a * 0.018);
  p.ellipse(ex, e.y, e.w, e.h, 0, cv::Scalar(25, 25, 30), lid, 0.2, 180, 360);
  p.ellipse(ex, e.y, e.w, e.h, 0, person.skin_dark, 1, 0.2, 0, 180);
  if (person.makeup) {  // winged liner / lashes at the outer corner
    p.line(ex + side * e.w, e.y, ex + side * e.w * 1.3, e.y - e.h * 0.5, cv::Scalar(20, 20, 25),
           lid, 0.2);
  }
}

void draw_brow(const Painter& p, const Eyes& e, int side, const cv::Scalar& colour) {
  const double ex = side * e.dx;
  std::vector<cv::Point2d> brow;
  for (int i = 0; i <= 8; ++i) {
    const double t = i / 8.0;  // inner .. outer
    const double x = ex + side * e.w * (-1.0 + 2.3 * t);
    const double y = e.y - e.brow_gap - e.arch * e.h * std::sin(t * kPi * 0.85) +
                     (t > 0.85 ? 0.3 * e.h : 0.0) * e.arch;
    brow.emplace_back(x, y);
  }
  p.polyline(brow, colour, e.brow_thick, 0.2);
}

Eyes draw_eyes(const Painter& p, Rng& rng, const Person& person) {
  const Eyes e = sample_eyes(rng, person);
  const cv::Scalar brow_colour =
      person.hair_index >= 6 ? scaled(person.hair, 0.6) : person.hair_dark;
  for (int side = -1; side <= 1; side += 2) {
    draw_eye(p, rng, person, e, side);
    draw_brow(p, e, side, brow_colour);
  }
  return e;
}

// --- nose and mouth -----------------------------------------------------------------------------

void draw_nose(const Painter& p, Rng& rng, const Person& person, const Eyes& e) {
  const double a = person.a, b = person.b, m = person.m;
  const double nose_len = b * (0.28 + 0.04 * sigmoid(m) + rng.normal(0, 0.02));
  const double nose_w = a * (0.16 + 0.05 * sigmoid(1.2 * m) + rng.normal(0, 0.015));
  const double nose_y = e.y + nose_len;
  p.line(e.dx * 0.25, e.y + 0.05 * b, nose_w * 0.45, nose_y - 0.05 * b,
         mix(person.skin, person.skin_shadow, 0.7), std::max(1.0, a * 0.02), 0.4);
  p.ellipse(0, nose_y, nose_w, nose_w * 0.45, 0, person.skin_shadow, std::max(1.0, a * 0.025), 0.45,
            20, 160);
  for (int side = -1; side <= 1; side += 2) {
    p.ellipse(side * nose_w * 0.45, nose_y + nose_w * 0.05, nose_w * 0.2, nose_w * 0.12, 0,
              person.skin_dark, -1, 0.45);
  }
}

struct Mouth {
  double y = 0.0;
  double w = 0.0;      // half-width
  double lip_h = 0.0;  // upper lip height
  double smile = 0.0;  // -0.3 (down) .. 1 (up)
  cv::Scalar lip;
};

Mouth sample_mouth(Rng& rng, const Person& person, double mouth_y) {
  const double m = person.m;
  Mouth mouth;
  mouth.y = mouth_y;
  mouth.w = person.a * (0.34 + rng.normal(0, 0.03) + 0.02 * m);
  const double fullness = 0.55 + 0.45 * sigmoid(-1.3 * m + rng.normal(0, 0.6));
  mouth.lip_h = person.b * 0.05 * fullness;
  mouth.smile = rng.uniform(-0.3, 1.0);
  const cv::Scalar& skin = person.skin;
  cv::Scalar lip = mix(skin, cv::Scalar(90, 90, 170), 0.3);
  if (person.makeup && rng.chance(0.7)) {
    static const std::array<cv::Scalar, 5> lipstick = {
        cv::Scalar(45, 40, 185), cv::Scalar(130, 100, 220), cv::Scalar(70, 30, 130),
        cv::Scalar(110, 135, 200), cv::Scalar(80, 105, 225)};
    lip = mix(skin, jitter(rng, pick(rng, lipstick), 15), rng.uniform(0.55, 0.9));
  }
  mouth.lip = lip;
  return mouth;
}

void draw_lips(const Painter& p, const Person& person, const Mouth& mouth) {
  const double mouth_w = mouth.w, mouth_y = mouth.y, lip_h = mouth.lip_h, smile = mouth.smile;
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
  p.poly(outline, mouth.lip, 0.25);
  std::vector<cv::Point2d> seam;
  for (int i = 0; i <= 12; ++i) {
    const double t = -1.0 + 2.0 * i / 12;
    seam.emplace_back(mouth_w * t, mouth_y - smile * lip_h * 0.6 * t * t);
  }
  p.polyline(seam, scaled(mouth.lip, 0.45), std::max(1.0, person.a * 0.015), 0.25);
}

// Lips, then a moustache over them (with a full beard: mostly). Returns the smile drawn.
double draw_mouth(const Painter& p, Rng& rng, const Person& person, double mouth_y) {
  const Mouth mouth = sample_mouth(rng, person, mouth_y);
  draw_lips(p, person, mouth);
  const int beard = person.beard;
  if (beard == 2 || beard == 3 || (beard == 4 && rng.chance(0.8))) {
    std::vector<cv::Point2d> pts;
    arc(pts, 0, mouth_y + 0.02 * person.b, mouth.w * 1.1, 0.16 * person.b, 200, 340, 12);
    p.polyline(pts, person.hair, std::max(2.0, person.b * 0.07), 0.3);
  }
  return mouth.smile;
}

// --- in front of the face: front hair, glasses, earrings ----------------------------------------

// The hair over the top of the head down to the hairline (bangs wavy, a receding one for older
// men) and, with longer hair, over the sides.
std::vector<cv::Point2d> hair_cap(const Person& person) {
  const double a = person.a, b = person.b, volume = person.volume, hairline = person.hairline;
  std::vector<cv::Point2d> cap;
  const double side_len =
      person.length >= 3 ? 0.45 * b : 0.05 * b;  // how far hair covers the sides
  arc(cap, 0, 0, a * volume, b * volume, 170, 370, 30);
  cap.emplace_back(a * volume, side_len);
  cap.emplace_back(a * 0.9, side_len);
  const int steps = 16;
  for (int i = 0; i <= steps; ++i) {  // hairline from the right temple to the left
    const double t = 1.0 - 2.0 * i / steps;
    double y =
        hairline + (-0.12 * b - hairline) * std::pow(std::abs(t), 2.5) + 0.12 * b * person.part * t;
    if (person.bangs) y += 0.03 * b * std::sin(i * 2.3);
    if (person.male && person.age > 0.55 && !person.bangs)
      y -= 0.1 * b * std::exp(-std::pow((std::abs(t) - 0.6) * 4, 2));
    cap.emplace_back(a * 0.9 * t, y);
  }
  cap.emplace_back(-a * 0.9, side_len);
  cap.emplace_back(-a * volume, side_len);
  return cap;
}

void draw_front_hair(const Painter& p, Rng& rng, const Person& person) {
  const double a = person.a, b = person.b;
  if (person.length >= 1) {
    const cv::Scalar colour = person.length == 1 ? mix(person.skin, person.hair, 0.6) : person.hair;
    p.poly(hair_cap(person), colour, 0.0);
    if (person.length >= 2) {  // a few strands for texture
      for (int i = 0; i < 6; ++i) {
        const double x = a * rng.uniform(-0.7, 0.7);
        p.line(x, -b * 0.9, x + person.part * a * 0.2, person.hairline * 0.9, person.hair_dark, 1,
               0.0);
      }
    }
  } else if (rng.chance(0.7)) {  // bald with hair at the sides
    for (int side = -1; side <= 1; side += 2) {
      p.ellipse(side * a * 0.93, -0.12 * b, a * 0.12, b * 0.2, 0,
                mix(person.skin, person.hair, 0.6), -1, 0.0);
    }
  }
}

void draw_glasses(const Painter& p, Rng& rng, const Person& person, const Eyes& e) {
  if (!person.glasses) return;
  static const std::array<cv::Scalar, 4> frames = {cv::Scalar(20, 20, 20), cv::Scalar(30, 50, 80),
                                                   cv::Scalar(60, 150, 190),
                                                   cv::Scalar(170, 170, 170)};
  const double a = person.a, b = person.b;
  const cv::Scalar frame = pick(rng, frames);
  const double t = std::max(1.0, a * rng.uniform(0.02, 0.045));
  const double gw = e.w * rng.uniform(1.35, 1.6);
  const double gh = e.h * rng.uniform(1.9, 2.6);
  for (int side = -1; side <= 1; side += 2) {
    const double gx = side * e.dx;
    if (person.sunglasses) {
      p.ellipse(gx, e.y + gh * 0.1, gw, gh, 0, cv::Scalar(25, 20, 20), -1, 0.3);
    }
    p.ellipse(gx, e.y + gh * 0.1, gw, gh, 0, frame, t, 0.3);
    p.line(gx + side * gw, e.y, side * a * 0.98, e.y - 0.02 * b, frame, t, 0.0);
  }
  p.line(-e.dx + gw, e.y, e.dx - gw, e.y, frame, t, 0.3);
}

// Studs or hoops, hidden by long hair.
void draw_earrings(const Painter& p, Rng& rng, const Person& person) {
  if (!person.earrings || person.length >= 4) return;
  const double a = person.a, b = person.b;
  const cv::Scalar metal = rng.chance(0.6) ? cv::Scalar(60, 180, 220) : cv::Scalar(200, 200, 205);
  const bool hoop = rng.chance(0.4);
  for (int side = -1; side <= 1; side += 2) {
    p.ellipse(side * a * 1.0, 0.3 * b, a * (hoop ? 0.1 : 0.045), a * (hoop ? 0.1 : 0.045), 0, metal,
              hoop ? std::max(1.0, a * 0.025) : -1, -0.5);
  }
}

}  // namespace

// Back to front, each part drawing what it needs from rng as it goes: the order of the calls is
// the order of the random draws, which the data depend on.
cv::Mat draw_face(Rng& rng, int gender, SynthDomain domain, int out_w, int out_h,
                  FaceAttributes& attributes) {
  Person person = sample_gender(rng, gender);
  cv::Mat img = blank_canvas(out_w, out_h);
  attributes.background = draw_background(img, rng, domain);
  Placement place = place_face(rng, domain, img.cols, img.rows);
  sample_head_shape(rng, place.u, person);
  sample_skin(rng, domain, person);
  sample_hair_colour(rng, person);
  sample_hair_style(rng, person);
  sample_extras(rng, domain, person);
  place.frame.a = person.a;
  const Painter p{img, place.frame};

  draw_back_hair(p, rng, person);
  const cv::Scalar clothes = draw_body(p, rng, person);
  const std::vector<cv::Point2d> head = head_outline(person);
  draw_head(p, rng, person, head);
  const double mouth_y = person.b * rng.uniform(0.5, 0.6);
  draw_facial_hair(p, person, head, mouth_y);
  const Eyes eyes = draw_eyes(p, rng, person);
  draw_nose(p, rng, person, eyes);
  attributes.smile = draw_mouth(p, rng, person, mouth_y);
  draw_front_hair(p, rng, person);
  draw_glasses(p, rng, person, eyes);
  draw_earrings(p, rng, person);

  attributes.gender = gender;
  attributes.skin_tone = person.tone;
  attributes.age = person.age;
  attributes.glasses = person.glasses;
  attributes.sunglasses = person.sunglasses;
  attributes.curly = person.curly;
  attributes.dark_hair = person.hair_index <= 2;
  attributes.grey_hair = person.hair_index >= 6;
  attributes.hair_colour = person.hair_index;
  attributes.hair_visible = person.length >= 1;
  for (int c = 0; c < 3; ++c) attributes.clothes_rgb[c] = clothes[2 - c];
  attributes.yaw = place.frame.yaw;
  attributes.roll = place.frame.roll_degrees();
  attributes.face_scale = place.u / std::min(img.cols, img.rows);
  return img;
}

}  // namespace onnxforge::gender::detail
