// Ops beyond the builder's set, added for imported models. Each entry: name, arity, inference.
#include "graph/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge {

void add_extra_op_schemas(std::map<std::string, OpSchema>& table) { (void)table; }

}  // namespace onnxforge
