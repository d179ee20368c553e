// Reference kernels for the ops of graph/ops_extra.cpp (imported models).
#include "backends/reference/kernels.hpp"

namespace onnxforge::reference {

void add_extra_kernels(KernelTable& table) { (void)table; }

}  // namespace onnxforge::reference
