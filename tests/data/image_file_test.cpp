// One image file: header inspection (bombs, truncation), decoding of every pixel format to RGB.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <tuple>
#include <vector>

#include "data/image_file.hpp"
#include "test_util.hpp"

namespace onnxforge::data {
namespace {
using testing::encode;
using testing::pattern;
using testing::TempDir;

std::string inspect(const std::vector<std::uint8_t>& bytes, ImageInfo* out = nullptr) {
  ImageInfo info;
  auto error = inspect_encoded_image(bytes, ImageLimits{}, info);
  if (out != nullptr) *out = info;
  return error;
}

void put_be32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 24);
  b[at + 1] = static_cast<std::uint8_t>(v >> 16);
  b[at + 2] = static_cast<std::uint8_t>(v >> 8);
  b[at + 3] = static_cast<std::uint8_t>(v);
}

// Byte offset of the height field of the first SOF marker of a JPEG.
std::size_t jpeg_sof_height_offset(const std::vector<std::uint8_t>& b) {
  for (std::size_t i = 2; i + 1 < b.size(); ++i) {
    if (b[i] == 0xFF && (b[i + 1] == 0xC0 || b[i + 1] == 0xC2)) return i + 5;
  }
  return 0;
}

TEST(InspectImage, ReadsDimensionsOfAllThreeFormats) {
  const cv::Mat image = pattern(37, 23, 1);
  for (const char* ext : {".jpg", ".png", ".bmp"}) {
    ImageInfo info;
    EXPECT_EQ(inspect(encode(ext, image), &info), "") << ext;
    EXPECT_EQ(info.width, 37) << ext;
    EXPECT_EQ(info.height, 23) << ext;
  }
}

TEST(InspectImage, RefusesDecompressionBombsFromTheHeaderAlone) {
  const cv::Mat image = pattern(16, 16, 2);
  auto png = encode(".png", image);
  put_be32(png, 16, 100000);
  put_be32(png, 20, 100000);
  EXPECT_NE(inspect(png).find("decompression bomb"), std::string::npos);

  auto jpg = encode(".jpg", image);
  const std::size_t at = jpeg_sof_height_offset(jpg);
  ASSERT_NE(at, 0U);
  jpg[at] = jpg[at + 1] = jpg[at + 2] = jpg[at + 3] = 0xFF;  // 65535 x 65535
  EXPECT_NE(inspect(jpg).find("decompression bomb"), std::string::npos);

  auto bmp = encode(".bmp", image);
  bmp[18] = 0x00, bmp[19] = 0x00, bmp[20] = 0x01, bmp[21] = 0x00;  // width 65536
  bmp[22] = 0x00, bmp[23] = 0x00, bmp[24] = 0x01, bmp[25] = 0x00;  // height 65536
  EXPECT_NE(inspect(bmp).find("decompression bomb"), std::string::npos);

  ImageLimits tight;
  tight.max_pixels = 100;
  ImageInfo info;
  EXPECT_NE(inspect_encoded_image(encode(".png", image), tight, info), "");
}

TEST(InspectImage, DetectsTruncationEmptinessAndNonImages) {
  const cv::Mat image = pattern(40, 40, 3);
  for (const char* ext : {".jpg", ".png", ".bmp"}) {
    auto bytes = encode(ext, image);
    bytes.resize(bytes.size() * 2 / 3);
    EXPECT_NE(inspect(bytes).find("truncated"), std::string::npos) << ext;
  }
  EXPECT_NE(inspect({}).find("empty"), std::string::npos);
  const std::string text = "this is not an image";
  EXPECT_NE(inspect({text.begin(), text.end()}).find("not an image"), std::string::npos);
}

TEST(LoadImage, GrayscaleRgbaAnd16BitBecomeRgb) {
  TempDir dir;
  std::vector<std::uint8_t> rgb(4 * 4 * 3);

  cv::Mat gray16(4, 4, CV_16UC1, cv::Scalar(257 * 100));
  testing::write_bytes(dir / "g16.png", encode(".png", gray16));
  ASSERT_EQ(load_image_rgb(dir / "g16.png", 4, 4, {}, rgb.data()), "");
  for (auto v : rgb) EXPECT_EQ(v, 100);

  cv::Mat bgra(4, 4, CV_8UC4, cv::Scalar(10, 20, 30, 0));  // fully transparent: alpha dropped
  testing::write_bytes(dir / "rgba.png", encode(".png", bgra));
  ASSERT_EQ(load_image_rgb(dir / "rgba.png", 4, 4, {}, rgb.data()), "");
  EXPECT_EQ(rgb[0], 30);
  EXPECT_EQ(rgb[1], 20);
  EXPECT_EQ(rgb[2], 10);

  cv::Mat bgr16(4, 4, CV_16UC3, cv::Scalar(257 * 1, 257 * 2, 257 * 3));
  testing::write_bytes(dir / "c16.png", encode(".png", bgr16));
  ASSERT_EQ(load_image_rgb(dir / "c16.png", 4, 4, {}, rgb.data()), "");
  EXPECT_EQ(rgb[0], 3);
  EXPECT_EQ(rgb[2], 1);
}

TEST(LoadImage, ResizesToTheModelInput) {
  TempDir dir;
  cv::Mat big(60, 80, CV_8UC3, cv::Scalar(5, 6, 7));
  testing::write_bytes(dir / "big.bmp", encode(".bmp", big));
  std::vector<std::uint8_t> rgb(10 * 12 * 3);
  ASSERT_EQ(load_image_rgb(dir / "big.bmp", 10, 12, {}, rgb.data()), "");
  for (std::size_t i = 0; i < rgb.size(); i += 3) {
    ASSERT_EQ(rgb[i], 7);
    ASSERT_EQ(rgb[i + 1], 6);
    ASSERT_EQ(rgb[i + 2], 5);
  }
  cv::Mat small(5, 3, CV_8UC1, cv::Scalar(9));
  testing::write_bytes(dir / "small.png", encode(".png", small));
  ASSERT_EQ(load_image_rgb(dir / "small.png", 10, 12, {}, rgb.data()), "");
  for (auto v : rgb) ASSERT_EQ(v, 9);
}

TEST(LoadImage, LargeJpegDecodedAtReducedScaleStillMatches) {
  TempDir dir;
  cv::Mat big(400, 440, CV_8UC3, cv::Scalar(40, 90, 160));
  cv::rectangle(big, cv::Rect(0, 0, 220, 400), cv::Scalar(200, 30, 10), cv::FILLED);
  testing::write_bytes(dir / "big.jpg", encode(".jpg", big));
  std::vector<std::uint8_t> rgb(50 * 50 * 3);
  ASSERT_EQ(load_image_rgb(dir / "big.jpg", 50, 50, {}, rgb.data()), "");
  // Left half blue-ish (B=200), right half orange-ish (R=160), within JPEG error.
  const std::uint8_t* left = &rgb[(25 * 50 + 5) * 3];
  const std::uint8_t* right = &rgb[(25 * 50 + 45) * 3];
  EXPECT_NEAR(left[2], 200, 8);
  EXPECT_NEAR(left[0], 10, 8);
  EXPECT_NEAR(right[0], 160, 8);
  EXPECT_NEAR(right[2], 40, 8);
}

TEST(ResizeArea, SameBytesAsOpenCvResizeAndBgrToRgb) {
  cv::RNG rng(7);
  int checked = 0;
  for (const auto& [sh, sw, dh, dw] :
       {std::tuple{180, 180, 100, 100}, std::tuple{23, 37, 7, 10}, std::tuple{101, 100, 100, 99},
        std::tuple{120, 250, 100, 100}, std::tuple{7, 1000, 2, 3}, std::tuple{300, 64, 100, 50},
        std::tuple{299, 211, 100, 100}, std::tuple{100, 150, 100, 100}}) {
    // A region of a larger image, so rows are not contiguous.
    cv::Mat big(sh + 3, sw + 5, CV_8UC3);
    rng.fill(big, cv::RNG::UNIFORM, 0, 256);
    const cv::Mat src = big(cv::Rect(2, 1, sw, sh));
    cv::Mat expected;
    cv::resize(src, expected, cv::Size(dw, dh), 0, 0, cv::INTER_AREA);
    cv::cvtColor(expected, expected, cv::COLOR_BGR2RGB);
    std::vector<std::uint8_t> out(static_cast<std::size_t>(dh) * dw * 3);
    resize_area_u8c3(src.data, src.step, sh, sw, out.data(), dh, dw, true);
    ASSERT_TRUE(expected.isContinuous());
    const std::vector<std::uint8_t> want(expected.data, expected.data + out.size());
    EXPECT_EQ(out, want) << sw << "x" << sh << " -> " << dw << "x" << dh;
    // Without the swap: cv::resize alone.
    cv::cvtColor(expected, expected, cv::COLOR_RGB2BGR);
    resize_area_u8c3(src.data, src.step, sh, sw, out.data(), dh, dw, false);
    EXPECT_EQ(out, std::vector<std::uint8_t>(expected.data, expected.data + out.size()));
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

TEST(LoadImage, ColourJpegIsOpenCvDecodeThenAreaResizeThenRgb) {
  // Decoded by libjpeg straight to RGB (at full, 1/2 and 1/4 scale), then resized by our own
  // area resize or copied: the bytes OpenCV's decode + resize + BGR->RGB give.
  TempDir dir;
  for (const auto& [side, flags] :
       {std::pair{180, cv::IMREAD_COLOR}, std::pair{100, cv::IMREAD_COLOR},
        std::pair{250, cv::IMREAD_REDUCED_COLOR_2}, std::pair{460, cv::IMREAD_REDUCED_COLOR_4}}) {
    cv::Mat photo(side, side + 7, CV_8UC3);
    cv::RNG(side).fill(photo, cv::RNG::UNIFORM, 0, 256);
    cv::GaussianBlur(photo, photo, cv::Size(9, 9), 3.0);
    const auto bytes = encode(".jpg", photo);
    testing::write_bytes(dir / "face.jpg", bytes);
    std::vector<std::uint8_t> rgb(100 * 100 * 3);
    ASSERT_EQ(load_image_rgb(dir / "face.jpg", 100, 100, {}, rgb.data()), "");
    cv::Mat expected = cv::imdecode(bytes, flags);
    cv::resize(expected, expected, cv::Size(100, 100), 0, 0, cv::INTER_AREA);
    cv::cvtColor(expected, expected, cv::COLOR_BGR2RGB);
    EXPECT_EQ(rgb, std::vector<std::uint8_t>(expected.data, expected.data + rgb.size())) << side;
  }
}

TEST(LoadImage, JpegExifOrientationIsApplied) {
  // 20 rows x 40 columns, left half red, right half blue; EXIF orientation 6 (rotate 90 degrees
  // clockwise to display) makes it 40 x 20 with red on top.
  cv::Mat wide(20, 40, CV_8UC3, cv::Scalar(255, 0, 0));                            // BGR blue
  cv::rectangle(wide, cv::Rect(0, 0, 20, 20), cv::Scalar(0, 0, 255), cv::FILLED);  // red
  const auto plain = encode(".jpg", wide);
  const std::vector<std::uint8_t> exif = {
      0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,        // APP1, length 34, "Exif\0\0"
      'I',  'I',  0x2A, 0x00, 8,   0,   0,   0,                // little-endian TIFF, IFD at 8
      1,    0,                                                 // one entry:
      0x12, 0x01, 3,    0,    1,   0,   0,   0,   6, 0, 0, 0,  // Orientation = 6
      0,    0,    0,    0};                                    // no next IFD
  std::vector<std::uint8_t> rotated;  // SOI, the EXIF segment, then the rest of the file
  for (std::size_t i = 0; i < plain.size(); ++i) {
    if (i == 2) {
      for (const auto byte : exif) rotated.push_back(byte);
    }
    rotated.push_back(plain[i]);
  }
  TempDir dir;
  testing::write_bytes(dir / "plain.jpg", plain);
  testing::write_bytes(dir / "rotated.jpg", rotated);
  std::vector<std::uint8_t> rgb(20 * 20 * 3);
  auto red_at = [&](int x, int y) {
    return rgb[3 * (y * 20 + x)] > 200 && rgb[3 * (y * 20 + x) + 2] < 60;
  };
  auto blue_at = [&](int x, int y) {
    return rgb[3 * (y * 20 + x) + 2] > 200 && rgb[3 * (y * 20 + x)] < 60;
  };
  ASSERT_EQ(load_image_rgb(dir / "plain.jpg", 20, 20, {}, rgb.data()), "");
  EXPECT_TRUE(red_at(2, 10));  // left
  EXPECT_TRUE(blue_at(17, 10));
  ASSERT_EQ(load_image_rgb(dir / "rotated.jpg", 20, 20, {}, rgb.data()), "");
  EXPECT_TRUE(red_at(10, 2));  // top
  EXPECT_TRUE(blue_at(10, 17));
}

TEST(LoadImage, FileSizeLimitIsCheckedBeforeReading) {
  TempDir dir;
  testing::write_bytes(dir / "x.png", encode(".png", pattern(30, 30, 4)));
  ImageLimits limits;
  limits.max_file_bytes = 10;
  std::vector<std::uint8_t> rgb(30 * 30 * 3);
  EXPECT_NE(load_image_rgb(dir / "x.png", 30, 30, limits, rgb.data()).find("over the limit"),
            std::string::npos);
}

}  // namespace
}  // namespace onnxforge::data
