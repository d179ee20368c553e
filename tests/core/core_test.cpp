// core/: the error type, seeded random numbers, hashes and whole files, against published values
// (splitmix64's reference output, FNV-1a's test vectors) and on the file system.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "core/files.hpp"
#include "core/hash.hpp"
#include "core/random.hpp"

namespace onnxforge {
namespace {

namespace fs = std::filesystem;

TEST(CoreRandom, SplitMix64MatchesItsReferenceOutput) {
  // Vigna's splitmix64.c seeded with 0: the first outputs.
  Random r(0);
  EXPECT_EQ(r.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(r.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(r.next(), 0x06c45d188009454fULL);
  // Counter-based: the k-th number is mix64 of seed + k * golden ratio.
  EXPECT_EQ(mix64(0x9e3779b97f4a7c15ULL), 0x6e789e6aa1b965f4ULL);
  // Streams derived from different coordinates differ; the same coordinates give the same seed.
  EXPECT_EQ(derive_seed(42, 1, 2), derive_seed(42, 1, 2));
  EXPECT_NE(derive_seed(42, 1, 2), derive_seed(42, 2, 1));
}

TEST(CoreRandom, UniformAndNormalAreInRangeAndRepeatable) {
  Random a(7), b(7);
  double sum = 0.0, squares = 0.0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double u = a.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    EXPECT_EQ(u, b.uniform());
  }
  for (int i = 0; i < n; ++i) {
    const double z = a.normal();
    sum += z;
    squares += z * z;
  }
  // Mean 0 and variance 1 within about 5 standard errors.
  EXPECT_NEAR(sum / n, 0.0, 0.04);
  EXPECT_NEAR(squares / n, 1.0, 0.05);
}

TEST(CoreHash, Fnv1a64MatchesItsTestVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  EXPECT_NE(fnv1a64("a", 1), fnv1a64("a"));
}

TEST(CoreFiles, AtomicWriteReplacesWholeAndReadNamesAMissingFile) {
  const fs::path dir = fs::temp_directory_path() / ("core_test_" + std::to_string(::getpid()));
  const fs::path file = dir / "sub" / "out.txt";
  write_file_atomic(file, "first");
  write_file_atomic(file, std::string("second\0bytes", 12));
  EXPECT_EQ(read_file(file), std::string("second\0bytes", 12));
  // No temporary file is left beside it.
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir / "sub")) ++entries;
  EXPECT_EQ(entries, 1u);
  try {
    read_file(dir / "missing.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.txt"), std::string::npos) << e.what();
  }
  // A folder that cannot be created (a file is in the way) is refused with its name.
  EXPECT_THROW(write_file_atomic(file / "below.txt", "x"), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace onnxforge
