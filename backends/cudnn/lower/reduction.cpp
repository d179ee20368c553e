// Reductions: ReduceMean and ReduceSum as an atomic scatter of x into zeros through the
// broadcast view of the kept shape in x (kernels.cu); backward gathers dy back (times 1 / count
// for the mean).
#include <cstdint>

#include "backends/cudnn/kernels.hpp"
#include "backends/cudnn/lower/common.hpp"
#include "backends/cudnn/plan.hpp"

namespace onnxforge::cudnn {

namespace {

void lower_reduce(CudnnProgram& p, const Node& n) {
  const Shape& xs = shape_of(p, n.inputs[0]);
  const Shape kept = reduce_kept_shape(n, xs);
  const StridedView view = make_broadcast_view(kept, xs);
  const float scale = n.is(OpId::ReduceMean) ? static_cast<float>(element_count(kept)) /
                                                   static_cast<float>(element_count(xs))
                                             : 1.f;
  const float* x = p.value(n.inputs[0]).f();
  float* y = p.value(n.outputs[0]).f();
  const std::int64_t count = p.value(n.inputs[0]).count;
  const std::int64_t out_count = p.value(n.outputs[0]).count;
  p.add_forward([&p, view, x, y, count, out_count, scale](Mode) {
    kernels::fill(y, 0.f, out_count, p.stream());
    kernels::strided_scatter(view, x, y, scale, count, p.stream());
  });
  float* dx = p.input_gradient(n, 0);
  if (!dx) return;
  const float* dy = p.output_gradient(n);
  p.add_backward([&p, view, dy, dx, count, scale]() {
    kernels::strided_gather(view, dy, dx, scale, true, count, p.stream());
  });
}

}  // namespace

void add_reduction_ops(CudnnOpTable& t) {
  t.lower({OpId::ReduceMean, OpId::ReduceSum}, lower_reduce,
          with_backward("the forward " + std::string(kAddsWithAtomics) + "; not yet run on a GPU"));
}

}  // namespace onnxforge::cudnn
