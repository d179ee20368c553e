// Binary arithmetic with numpy broadcasting: Add, Sub, Mul, Div.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/ops/common.hpp"

namespace onnxforge::reference {

namespace {

// y = f(a, b) with d/da and d/db --------------------------------------------
Kernel binary(double (*f)(double, double), double (*dfa)(double, double),
              double (*dfb)(double, double)) {
  return {[f](ForwardArgs& a) {
            auto& y = *a.outputs[0];
            const auto& x0 = *a.inputs[0];
            const auto& x1 = *a.inputs[1];
            for (size_t i = 0; i < y.size(); ++i) {
              const auto k = static_cast<int64_t>(i);
              y.data[i] = f(x0.data[broadcast_index(y.shape, x0.shape, k)],
                            x1.data[broadcast_index(y.shape, x1.shape, k)]);
            }
          },
          [dfa, dfb](BackwardArgs& a) {
            const auto& dy = *a.output_grads[0];
            const auto& x0 = *a.inputs[0];
            const auto& x1 = *a.inputs[1];
            for (size_t i = 0; i < dy.size(); ++i) {
              const auto k = static_cast<int64_t>(i);
              const auto i0 = broadcast_index(dy.shape, x0.shape, k);
              const auto i1 = broadcast_index(dy.shape, x1.shape, k);
              if (a.input_grads[0]) {
                a.input_grads[0]->data[i0] += dy.data[i] * dfa(x0.data[i0], x1.data[i1]);
              }
              if (a.input_grads[1]) {
                a.input_grads[1]->data[i1] += dy.data[i] * dfb(x0.data[i0], x1.data[i1]);
              }
            }
          }};
}

double add(double a, double b) { return a + b; }
double one(double, double) { return 1.0; }
double minus_one(double, double) { return -1.0; }
double mul(double a, double b) { return a * b; }
double mul_da(double, double b) { return b; }
double mul_db(double a, double) { return a; }
double sub(double a, double b) { return a - b; }
double div(double a, double b) { return a / b; }
double div_da(double, double b) { return 1.0 / b; }
double div_db(double a, double b) { return -a / (b * b); }

}  // namespace

void add_binary_kernels(KernelTable& table) {
  table.lower(OpId::Add, binary(add, one, one));
  table.lower(OpId::Sub, binary(sub, one, minus_one));
  table.lower(OpId::Mul, binary(mul, mul_da, mul_db));
  table.lower(OpId::Div, binary(div, div_da, div_db));
}

}  // namespace onnxforge::reference
