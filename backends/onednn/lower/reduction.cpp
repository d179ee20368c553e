// Reductions: ReduceMean and ReduceSum through oneDNN's reduction primitive (in the input's own
// layout, else on plain layouts) where oneDNN 2.6 has a kernel for the case, a loop on plain
// layouts elsewhere; backward broadcasts dy (times 1 / count for the mean) back over the reduced
// axes in one parallel loop on plain layouts. No reduced axis (noop_with_empty_axes): an alias.
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "backends/onednn/lower/common.hpp"
#include "core/error.hpp"
#include "core/strides.hpp"

namespace onnxforge::onednn {

namespace {

// dst (shape `big`, plain) = scale * src (shape `kept`: `big` with 1s, plain) broadcast, rows of
// the last dimension in parallel.
void broadcast_scaled(const float* src, float* dst, const Shape& big, const Shape& kept,
                      float scale) {
  const std::size_t rank = big.size();
  const std::int64_t last = rank ? big[rank - 1] : 1;
  const std::int64_t rows = element_count(big) / last;
  const auto strides = broadcast_strides(kept, big);
  const std::int64_t step = rank ? strides[rank - 1] : 0;
#pragma omp parallel for if (rows * last > kParallelThreshold)
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t offset = 0, rest = r;
    for (std::size_t d = rank - 1; d-- > 0;) {
      offset += (rest % big[d]) * strides[d];
      rest /= big[d];
    }
    float* out = dst + r * last;
    for (std::int64_t j = 0; j < last; ++j) out[j] = scale * src[offset + j * step];
  }
}

void lower_reduce(OnednnProgram& p, const Node& n, const Node*, Plan plan) {
  const std::string x = n.inputs[0];
  const std::string y = n.outputs[0];
  const Shape xs = p.value(x).shape;
  const Shape ys = p.value(y).shape;
  const Shape kept = reduce_kept_shape(n, xs);
  const bool mean = n.is(OpId::ReduceMean);
  if (kept == xs) {  // nothing reduced: y is x
    lower_as_view(p, n, plan);
    return;
  }
  const float scale =
      mean ? static_cast<float>(element_count(kept)) / static_cast<float>(element_count(xs)) : 1.f;
  // y's bytes seen with the reduced axes kept as 1s (the same plain layout whatever keepdims).
  memory ym = p.define(y, plain_desc(ys));
  const memory dst(plain_desc(kept), p.engine(), ym.get_data_handle());
  const algorithm alg = mean ? algorithm::reduction_mean : algorithm::reduction_sum;
  std::vector<Desc> sources;
  if (p.value(x).md != plain_desc(xs)) sources.push_back(p.value(x).md);
  sources.push_back(plain_desc(xs));
  bool lowered = false;
  for (const Desc& src_md : sources) {
    std::optional<dnnl::reduction::primitive_desc> pd;
    try {
      pd.emplace(dnnl::reduction::desc(alg, src_md, plain_desc(kept), 0.f, 0.f), p.engine());
    } catch (const dnnl::error&) {
      continue;
    }
    if (is_reference_impl(pd->impl_info_str())) continue;
    const memory src = p.use(x, pd->src_desc(), plan);
    p.add_primitive(plan,
                    fmt::format("{}: {} (reduction, {}) src {}", n.name, n.op, pd->impl_info_str(),
                                layout_name(pd->src_desc())),
                    dnnl::reduction(*pd), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    lowered = true;
    break;
  }
  if (!lowered) {
    const memory xm = p.use(x, plain_desc(xs), plan);
    const auto strides = broadcast_strides(kept, xs);
    p.add(plan, fmt::format("{}: {} (loop)", n.name, n.op), {xm, ym, dst},
          [xm, dst, xs, strides, scale]() {
            const float* px = floats(xm);
            float* py = floats(dst);
            std::fill(py, py + float_count(dst), 0.f);
            for_each_broadcast(
                xs, strides, strides,
                [&](std::int64_t i, std::int64_t iy, std::int64_t) { py[iy] += px[i]; });
            if (scale != 1.f) {
              for (std::size_t i = 0; i < float_count(dst); ++i) py[i] *= scale;
            }
          });
  }
  if (plan != Plan::training) return;
  p.add_backward_builder([&p, n, x, y, xs, ys, kept, scale]() {
    if (!p.needs_gradient(x) || !p.needs_gradient(y)) return;
    const memory dy = p.gradient_in(y, plain_desc(ys));
    GradSink sink = p.gradient_sink(x, plain_desc(xs));
    const memory dx = sink.mem;
    p.add(
        Plan::backward, fmt::format("{}: {} backward (loop)", n.name, n.op), {dy, dx},
        [dy, dx, xs, kept, scale]() { broadcast_scaled(floats(dy), floats(dx), xs, kept, scale); });
    p.finish(sink);
  });
}

}  // namespace

void add_reduction_lowerings(LoweringTable& table) {
  table.lower({OpId::ReduceMean, OpId::ReduceSum}, lower_reduce,
              {.backward = true,
               .note = "oneDNN's reduction where oneDNN 2.6 has a kernel for the axes and layout, "
                       "else a single-threaded loop on plain layouts; backward: a parallel loop"});
}

}  // namespace onnxforge::onednn
