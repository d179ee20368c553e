// Reduction kernels: ReduceMean, ReduceSum. Each input element adds into the output element its
// reduced axes collapse to (the output seen with the reduced axes kept as 1s).
#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

Kernel reduce_kernel(bool mean) {
  // 1 / count of the reduced elements per output element for the mean, else 1.
  auto scale_of = [mean](const Shape& x, const Shape& y) {
    return mean ? static_cast<double>(std::max<int64_t>(element_count(y), 1)) /
                      static_cast<double>(element_count(x))
                : 1.0;
  };
  return {[scale_of](ForwardArgs& a) {
            const Shape& x = a.inputs[0]->shape;
            const Shape kept = reduce_kept_shape(a.node, x);
            auto& y = a.outputs[0]->data;
            std::fill(y.begin(), y.end(), 0.0);
            for (size_t i = 0; i < a.inputs[0]->size(); ++i) {
              y[broadcast_index(x, kept, static_cast<int64_t>(i))] += a.inputs[0]->data[i];
            }
            const double scale = scale_of(x, a.outputs[0]->shape);
            for (auto& v : y) v *= scale;
          },
          [scale_of](BackwardArgs& a) {
            if (!a.input_grads[0]) return;
            const Shape& x = a.inputs[0]->shape;
            const Shape kept = reduce_kept_shape(a.node, x);
            const double scale = scale_of(x, a.output_grads[0]->shape);
            for (size_t i = 0; i < a.input_grads[0]->size(); ++i) {
              a.input_grads[0]->data[i] +=
                  scale *
                  a.output_grads[0]->data[broadcast_index(x, kept, static_cast<int64_t>(i))];
            }
          }};
}

}  // namespace

void add_reduction_kernels(KernelTable& table) {
  table.lower(OpId::ReduceMean, reduce_kernel(true));
  table.lower(OpId::ReduceSum, reduce_kernel(false));
}

}  // namespace onnxforge::reference
