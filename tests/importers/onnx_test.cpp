#include <gtest/gtest.h>
TEST(Onnx, Placeholder) {}
