// The oneDNN backend's own loops (backends/onednn/loops.cpp) in every layout oneDNN 2.6 picks for
// the tensors around them: planar nchw, channels-last nhwc (brgconv on AVX-512 and AMX) and
// channels blocked by 8 (AVX2) or 16 (AVX-512), whatever this CPU would choose. Each is checked
// against a naive max pooling over the logical tensor; and the ISA cap that scripts/test.sh uses
// to run the backend tests as smaller CPUs is checked to take effect.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backends/onednn/onednn_backend.hpp"
#include "backends/onednn/program.hpp"
#include "graph/builder.hpp"

namespace onnxforge::onednn {
namespace {

struct Layout {
  std::string name;
  std::int64_t block;  // 1: nchw; 0: nhwc (one block of all channels); 8, 16: nChw8c, nChw16c
};

struct Window {
  std::int64_t kernel, stride, pad, dilation;
};

// Strides and sizes of one tensor N,C,H,W in `layout`, as PoolGeometry wants them.
struct Placed {
  std::int64_t block = 1, blocks = 1, sn = 0, sc = 0, sh = 0, sw = 0, size = 0;
};

Placed place(const Layout& layout, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  Placed p;
  if (layout.block == 0) {  // nhwc
    p.block = c;
    p.blocks = 1;
    p.sw = c;
    p.sh = w * c;
    p.sc = 0;
    p.sn = h * w * c;
  } else {
    p.block = layout.block;
    p.blocks = (c + p.block - 1) / p.block;
    p.sw = p.block;
    p.sh = w * p.block;
    p.sc = h * w * p.block;
    p.sn = p.blocks * p.sc;
  }
  p.size = n * p.sn;
  return p;
}

std::int64_t offset(const Placed& p, std::int64_t n, std::int64_t c, std::int64_t h,
                    std::int64_t w) {
  return n * p.sn + (c / p.block) * p.sc + h * p.sh + w * p.sw + c % p.block;
}

// A batch x channels x side x side tensor placed as `p`, its values uniform in [-1, 1) from `rng`
// (distinct: no ties), its padding lanes zero as oneDNN keeps them.
std::vector<float> random_placed(const Placed& p, std::int64_t batch, std::int64_t channels,
                                 std::int64_t side, Random& rng) {
  std::vector<float> t(static_cast<std::size_t>(p.size), 0.f);
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t h = 0; h < side; ++h)
        for (std::int64_t w = 0; w < side; ++w)
          t[static_cast<std::size_t>(offset(p, n, c, h, w))] =
              static_cast<float>(rng.uniform() * 2 - 1);
  return t;
}

void check(const Layout& layout, std::int64_t channels, std::int64_t in, const Window& win) {
  SCOPED_TRACE(layout.name + " C=" + std::to_string(channels) + " " + std::to_string(in) + "x" +
               std::to_string(in) + " k" + std::to_string(win.kernel) + " s" +
               std::to_string(win.stride) + " p" + std::to_string(win.pad) + " d" +
               std::to_string(win.dilation));
  const std::int64_t batch = 2;
  const std::int64_t span = win.dilation * (win.kernel - 1) + 1;
  const std::int64_t out = (in + 2 * win.pad - span) / win.stride + 1;
  const Placed src = place(layout, batch, channels, in, in);
  const Placed dst = place(layout, batch, channels, out, out);
  PoolGeometry g;
  g.batch = batch;
  g.block = src.block;
  g.channel_blocks = src.blocks;
  g.in_h = g.in_w = in;
  g.out_h = g.out_w = out;
  g.win.kernel_h = g.win.kernel_w = win.kernel;
  g.win.stride_h = g.win.stride_w = win.stride;
  g.win.dilation_h = g.win.dilation_w = win.dilation;
  g.win.pad_top = g.win.pad_left = win.pad;
  g.src_n = src.sn, g.src_c = src.sc, g.src_h = src.sh, g.src_w = src.sw;
  g.dst_n = dst.sn, g.dst_c = dst.sc, g.dst_h = dst.sh, g.dst_w = dst.sw;

  Random rng(7);
  const std::vector<float> x = random_placed(src, batch, channels, in, rng);
  const std::vector<float> dy = random_placed(dst, batch, channels, out, rng);

  std::vector<float> y(static_cast<std::size_t>(dst.size), 0.f);
  std::vector<float> y_inference(static_cast<std::size_t>(dst.size), 0.f);
  std::vector<std::uint8_t> argmax(static_cast<std::size_t>(dst.size), 0);
  std::vector<float> dx(static_cast<std::size_t>(src.size), 42.f);  // backward must clear it
  max_pool_forward(g, x.data(), y.data(), argmax.data());
  max_pool_forward(g, x.data(), y_inference.data(), nullptr);
  max_pool_backward(g, dy.data(), argmax.data(), dx.data());

  std::vector<double> want_dx(static_cast<std::size_t>(src.size), 0.0);
  int failures = 0;
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t oh = 0; oh < out; ++oh) {
        for (std::int64_t ow = 0; ow < out; ++ow) {
          float best = -INFINITY;
          std::int64_t best_at = -1;
          for (std::int64_t kh = 0; kh < win.kernel; ++kh) {
            for (std::int64_t kw = 0; kw < win.kernel; ++kw) {
              const std::int64_t ih = oh * win.stride - win.pad + kh * win.dilation;
              const std::int64_t iw = ow * win.stride - win.pad + kw * win.dilation;
              if (ih < 0 || ih >= in || iw < 0 || iw >= in) continue;
              const float v = x[static_cast<std::size_t>(offset(src, n, c, ih, iw))];
              if (v > best) {
                best = v;
                best_at = offset(src, n, c, ih, iw);
              }
            }
          }
          const auto at = static_cast<std::size_t>(offset(dst, n, c, oh, ow));
          if (y[at] != best || y_inference[at] != best) {
            if (++failures <= 5) {
              ADD_FAILURE() << "y at n" << n << " c" << c << " " << oh << "," << ow << ": got "
                            << y[at] << " / " << y_inference[at] << ", want " << best;
            }
          }
          if (best_at >= 0) want_dx[static_cast<std::size_t>(best_at)] += dy[at];
        }
      }
    }
  }
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t h = 0; h < in; ++h)
        for (std::int64_t w = 0; w < in; ++w) {
          const auto at = static_cast<std::size_t>(offset(src, n, c, h, w));
          if (std::abs(dx[at] - want_dx[at]) > 1e-6) {
            if (++failures <= 10) {
              ADD_FAILURE() << "dx at n" << n << " c" << c << " " << h << "," << w << ": got "
                            << dx[at] << ", want " << want_dx[at];
            }
          }
        }
  EXPECT_EQ(failures, 0);
}

TEST(OnednnPoolLoops, MatchNaiveMaxPoolingInEveryLayout) {
  const std::vector<Layout> layouts = {{"nchw", 1}, {"nhwc", 0}, {"nChw8c", 8}, {"nChw16c", 16}};
  // Baseline (2x2 stride 1), VGG16 and improved (2x2 stride 2), ResNet's 3x3 stride 2 pad 1, and
  // a dilated one; channel counts that fill 16-lane, 8-lane and single-channel chunks.
  const std::vector<Window> windows = {{2, 1, 0, 1}, {2, 2, 0, 1}, {3, 2, 1, 1}, {2, 1, 0, 2}};
  for (const auto& layout : layouts) {
    for (std::int64_t channels : {1, 3, 8, 16, 24, 37}) {
      for (const auto& win : windows) check(layout, channels, 9, win);
    }
  }
}

// The lowering picks the loops or oneDNN's pooling primitive by measuring both (lower.cpp,
// time_max_pool), so the two must agree bit for bit, ties included: after a ReLU whole windows
// are 0, and both give a tie to the first maximum in scan order.
TEST(OnednnPoolLoops, AgreeWithTheOnednnPrimitiveOnTies) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const std::vector<std::pair<std::string, Tag>> tags = {
      {"nchw", Tag::nchw}, {"nhwc", Tag::nhwc}, {"nChw8c", Tag::nChw8c}, {"nChw16c", Tag::nChw16c}};
  for (const auto& [name, tag] : tags) {
    for (const Window& w : {Window{2, 1, 0, 1}, Window{3, 2, 1, 1}}) {
      SCOPED_TRACE(name + " kernel " + std::to_string(w.kernel));
      const std::int64_t n = 2, c = 24, in = 11;
      const std::int64_t out = (in + 2 * w.pad - w.kernel) / w.stride + 1;
      const Desc src_md({n, c, in, in}, DataType::f32, tag);
      const Desc dst_md({n, c, out, out}, DataType::f32, tag);
      const memory::dims strides{w.stride, w.stride}, kernel{w.kernel, w.kernel}, dil{0, 0},
          pad{w.pad, w.pad};
      dnnl::pooling_v2_forward::primitive_desc pd(
          {dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, src_md, dst_md, strides,
           kernel, dil, pad, pad},
          engine);
      dnnl::pooling_v2_backward::primitive_desc bpd(
          {dnnl::algorithm::pooling_max, src_md, dst_md, strides, kernel, dil, pad, pad}, engine,
          pd);
      memory x(src_md, engine), y(dst_md, engine), dy(dst_md, engine), dx(src_md, engine),
          workspace(pd.workspace_desc(), engine);
      // Filled through plain memories and a reorder, which keeps blocked padding lanes zero as
      // oneDNN's own primitives do.
      memory plain_x({{n, c, in, in}, DataType::f32, Tag::nchw}, engine);
      memory plain_dy({{n, c, out, out}, DataType::f32, Tag::nchw}, engine);
      Random rng(3);
      auto* fill_x = static_cast<float*>(plain_x.get_data_handle());
      for (std::int64_t i = 0; i < n * c * in * in; ++i) {
        // -1, 0, 1 clipped at 0 as after a ReLU: whole windows tie.
        fill_x[i] = std::max(static_cast<float>(static_cast<int>(rng.uniform() * 3) - 1), 0.f);
      }
      // Multiples of 1/8: sums of a few are exact in any order, so equal bits mean equal routing.
      auto* fill_dy = static_cast<float*>(plain_dy.get_data_handle());
      for (std::int64_t i = 0; i < n * c * out * out; ++i) {
        fill_dy[i] = static_cast<float>(static_cast<int>(rng.uniform() * 64)) / 8.f;
      }
      dnnl::reorder(plain_x, x).execute(stream, plain_x, x);
      dnnl::reorder(plain_dy, dy).execute(stream, plain_dy, dy);
      stream.wait();
      const auto* px = static_cast<const float*>(x.get_data_handle());
      const auto* pdy = static_cast<const float*>(dy.get_data_handle());
      dnnl::pooling_v2_forward(pd).execute(
          stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, y}, {DNNL_ARG_WORKSPACE, workspace}});
      dnnl::pooling_v2_backward(bpd).execute(
          stream,
          {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_WORKSPACE, workspace}});
      stream.wait();
      Window2d win;
      win.kernel_h = win.kernel_w = w.kernel;
      win.stride_h = win.stride_w = w.stride;
      win.pad_top = win.pad_left = win.pad_bottom = win.pad_right = w.pad;
      const std::optional<PoolGeometry> g = pool_geometry(src_md, dst_md, win);
      ASSERT_TRUE(g.has_value());
      std::vector<float> y2(dst_md.get_size() / 4), dx2(src_md.get_size() / 4);
      std::vector<std::uint8_t> argmax(y2.size());
      max_pool_forward(*g, px, y2.data(), argmax.data());
      max_pool_backward(*g, pdy, argmax.data(), dx2.data());
      EXPECT_EQ(std::memcmp(y2.data(), y.get_data_handle(), dst_md.get_size()), 0) << "y";
      EXPECT_EQ(std::memcmp(dx2.data(), dx.get_data_handle(), src_md.get_size()), 0) << "dx";
    }
  }
}

// Denormals: Adam's moments decay towards zero as training converges, and a loop on denormal
// operands runs many times slower on many CPUs. Every compute entry point of a Program flushes
// them (FTZ + DAZ) on its OpenMP workers and on the calling thread, which gets its own flags back
// afterwards.
TEST(OnednnCompute, FlushesDenormalsInTheOptimizerAndRestoresTheCaller) {
  ASSERT_FALSE(flushes_denormals()) << "the test process should start without FTZ/DAZ";
  Builder b("denormal", 1);
  auto x = b.input("x", {2, 64});
  b.output(b.dense(x, 512));  // 32,768 weights: enough for the optimizer loop to run in parallel
  Graph g = b.build();
  g.inputs.push_back({"unused_loss", DType::f32, {}});
  g.validate();
  auto program =
      make_onednn_backend()->compile(g, {.training = true, .loss = "unused_loss", .threads = 2});
  const std::string kernel = g.initializers.at(0).name;
  const Shape shape = g.value(kernel).shape;
  // A gradient of denormals: read as zero (DAZ), Adam's first moment stays exactly zero; without
  // DAZ it would be 0.1 * 1e-39, a denormal itself.
  Tensor tiny(DType::f32, shape);
  for (auto& v : tiny.data<float>()) v = 1e-39f;
  ASSERT_NE(std::fpclassify(tiny.data<float>()[0]), FP_NORMAL);
  program->set_gradient(kernel, tiny);
  program->update({.kind = OptimizerSpec::Kind::adam, .learning_rate = 1e-3});
  const Tensor m = program->optimizer_state().at(kernel + "/m");
  std::int64_t denormals = 0;
  for (float v : m.data<float>()) denormals += std::fpclassify(v) == FP_SUBNORMAL;
  EXPECT_EQ(denormals, 0) << "of " << m.size() << " first moments";
  EXPECT_EQ(m.data<float>()[0], 0.f);
  EXPECT_EQ(m.data<float>()[m.size() - 1], 0.f);
  EXPECT_FALSE(flushes_denormals()) << "the caller's floating-point flags were not restored";
}

// scripts/test.sh reruns the backend tests with ONEDNN_MAX_CPU_ISA set to each level below this
// CPU's; this shows the level oneDNN then runs at, and fails if the cap did not take.
TEST(OnednnIsa, HonoursTheCap) {
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  const dnnl::cpu_isa effective = dnnl::get_effective_cpu_isa();
  std::printf("    oneDNN ISA: %s (ONEDNN_MAX_CPU_ISA=%s)\n", isa_name().c_str(),
              cap ? cap : "unset");
  if (!cap) GTEST_SKIP() << "no cap set; oneDNN runs at " << isa_name();
  const std::string level = cap;
  const std::vector<std::pair<std::string, dnnl::cpu_isa>> levels = {
      {"AVX2", dnnl::cpu_isa::avx2},
      {"AVX512_CORE", dnnl::cpu_isa::avx512_core},
      {"AVX512_CORE_VNNI", dnnl::cpu_isa::avx512_core_vnni},
      {"AVX512_CORE_BF16", dnnl::cpu_isa::avx512_core_bf16},
      {"AVX512_CORE_AMX", dnnl::cpu_isa::avx512_core_amx}};
  for (const auto& [name, isa] : levels) {
    if (name != level) continue;
    // cpu_isa values are bit sets: the effective one must not exceed the cap.
    EXPECT_EQ(static_cast<unsigned>(effective) & ~static_cast<unsigned>(isa), 0u)
        << "ONEDNN_MAX_CPU_ISA=" << level << " but oneDNN runs " << isa_name();
    return;
  }
  FAIL() << "unknown ONEDNN_MAX_CPU_ISA=" << level;
}

}  // namespace
}  // namespace onnxforge::onednn
