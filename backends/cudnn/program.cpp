// The cudnn Program: device memory, compile-time planning and the run-time entry points. The op
// lowerings live in lower/<family>.cpp (their table and the dispatch in lower.cpp), the kernels in
// kernels.cu.
#include "backends/cudnn/program.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "backends/cudnn/cublas_loader.hpp"
#include "backends/cudnn/kernels.hpp"
#include "backends/optimizer_state.hpp"
#include "core/error.hpp"
#include "graph/ops.hpp"

namespace onnxforge::cudnn {

// ---- errors -------------------------------------------------------------------------------------

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    fail("cudnn backend: {} failed: {} ({})", what, cudaGetErrorString(status),
         cudaGetErrorName(status));
  }
}

void check(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS) {
    fail("cudnn backend: {} failed: {}", what, cudnnGetErrorString(status));
  }
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    fail("cudnn backend: {} failed: {} ({})", what, cublas_api().status_string(status),
         cublas_api().status_name(status));
  }
}

}  // namespace onnxforge::cudnn

namespace onnxforge::cudnn::kernels {

void check_launch(const char* what) { check(cudaGetLastError(), what); }

}  // namespace onnxforge::cudnn::kernels

namespace onnxforge::cudnn {

// ---- device memory and descriptors
// ----------------------------------------------------------------

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  const cudaError_t status = cudaMalloc(&ptr_, bytes);
  if (status != cudaSuccess) {
    ptr_ = nullptr;
    fail("cudnn backend: cannot allocate {:.1f} MiB on the GPU: {}",
         static_cast<double>(bytes) / (1 << 20), cudaGetErrorString(status));
  }
  check(cudaMemset(ptr_, 0, bytes), "cudaMemset");
  // cudaMemset runs on the legacy default stream, which does not order itself with the
  // Program's non-blocking stream: wait, so that no kernel ever sees the buffer before it is 0.
  check(cudaStreamSynchronize(nullptr), "cudaStreamSynchronize (zero-fill)");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

TensorDesc::TensorDesc() {
  check(cudnnCreateTensorDescriptor(&desc), "cudnnCreateTensorDescriptor");
}
TensorDesc::~TensorDesc() { cudnnDestroyTensorDescriptor(desc); }

std::shared_ptr<TensorDesc> tensor_desc_4d(std::int64_t n, std::int64_t c, std::int64_t h,
                                           std::int64_t w) {
  auto d = std::make_shared<TensorDesc>();
  check(
      cudnnSetTensor4dDescriptor(d->desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n),
                                 static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)),
      "cudnnSetTensor4dDescriptor");
  return d;
}

std::shared_ptr<TensorDesc> tensor_desc(const Shape& shape) {
  std::int64_t dims[4] = {1, 1, 1, 1};
  for (std::size_t i = 0; i < shape.size(); ++i) dims[std::min<std::size_t>(i, 3)] *= shape[i];
  return tensor_desc_4d(dims[0], dims[1], dims[2], dims[3]);
}

// ---- compile
// ---------------------------------------------------------------------------------------

CudnnProgram::CudnnProgram(const Graph& graph, const CompileOptions& options)
    : graph_(graph), options_(options) {
  try {
    build();
  } catch (...) {
    release();
    throw;
  }
}

void CudnnProgram::build() {
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudnnCreate(&cudnn_), "cudnnCreate");
  check(cudnnSetStream(cudnn_, stream_), "cudnnSetStream");
  check(cublas_api().create(&cublas_), "cublasCreate");
  check(cublas_api().set_stream(cublas_, stream_), "cublasSetStream");
  // f32 means f32: cuBLAS's default math keeps f32 precision (TF32 only with
  // CUBLAS_TF32_TENSOR_OP_MATH); cuDNN convolutions are restricted to FMA math in
  // lower/linear_algebra.cpp.
  check(cublas_api().set_math_mode(cublas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  std::size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  // Algorithm search may use up to a quarter of what is free, at most 2 GiB.
  workspace_limit_ = std::min<std::size_t>(free_bytes / 4, std::size_t{2} << 30);
  norm_ = DeviceBuffer(sizeof(double));

  // Backward roots: the loss, the graph outputs and the kept values (all can be seeded).
  if (options_.training) {
    std::vector<std::string> roots{options_.loss};
    for (const auto& out : graph_.outputs) roots.push_back(out);
    for (const auto& kept : options_.keep) roots.push_back(kept);
    needs_grad_ = values_needing_gradient(graph_, roots, options_.input_gradients);
    for (const auto& root : roots) {
      if (needs_grad_.count(root)) values_[root].seedable = true;
    }
  }
  for (const auto& [name, info] : graph_.values) {
    Value& v = values_[name];
    v.name = name;
    v.shape = info.shape;
    v.dtype = info.dtype;
    v.count = element_count(info.shape);
    const std::size_t element = info.dtype == DType::i64 ? sizeof(std::int64_t) : sizeof(float);
    v.data = DeviceBuffer(static_cast<std::size_t>(v.count) * element);
    if (needs_grad_.count(name) && info.dtype == DType::f32) {
      v.grad = DeviceBuffer(static_cast<std::size_t>(v.count) * sizeof(float));
    }
  }
  for (const auto& init : graph_.initializers) {
    Value& v = value(init.name);
    v.parameter = true;
    v.trainable = init.trainable;
    if (init.trainable) {
      trainable_.push_back(init.name);
      if (options_.training && !v.grad.get()) {
        v.grad = DeviceBuffer(static_cast<std::size_t>(v.count) * sizeof(float));
      }
    }
    write(v, v.data, init.value, "initializer");
  }
  lower_all();
  synchronize("compile");
  search_ = DeviceBuffer();
}

void* CudnnProgram::search_workspace() {
  if (!search_.get()) search_ = DeviceBuffer(workspace_limit_);
  return search_.get();
}

CudnnProgram::~CudnnProgram() { release(); }

void CudnnProgram::release() noexcept {
  if (stream_) cudaStreamSynchronize(stream_);
  forward_.clear();
  backward_.clear();
  if (cublas_) cublas_api().destroy(cublas_);
  if (cudnn_) cudnnDestroy(cudnn_);
  // Buffers are freed by their destructors; the stream goes last.
  values_.clear();
  scratch_.clear();
  slots_.clear();
  search_ = DeviceBuffer();
  workspace_ = DeviceBuffer();
  ones_ = DeviceBuffer();
  bad_label_ = DeviceBuffer();
  norm_ = DeviceBuffer();
  if (stream_) cudaStreamDestroy(stream_);
  cublas_ = nullptr;
  cudnn_ = nullptr;
  stream_ = nullptr;
}

void CudnnProgram::lower_all() {
  for (const auto& node : graph_.nodes) lower_node(*this, node);
}

Value& CudnnProgram::value(const std::string& name) {
  auto it = values_.find(name);
  if (it == values_.end()) fail("cudnn backend: '{}' is not a value of the graph", name);
  return it->second;
}

const Value& CudnnProgram::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) fail("cudnn backend: '{}' is not a value of the graph", name);
  return it->second;
}

float* CudnnProgram::input_gradient(const Node& node, std::size_t index) {
  if (!options_.training || index >= node.inputs.size()) return nullptr;
  const std::string& in = node.inputs[index];
  if (in.empty() || !needs_grad_.count(in)) return nullptr;
  if (!is_differentiable_input(node, index)) return nullptr;
  return value(in).g();
}

float* CudnnProgram::output_gradient(const Node& node, std::size_t index) {
  return value(node.outputs.at(index)).g();
}

float* CudnnProgram::scratch(std::size_t bytes) {
  scratch_.emplace_back(std::max<std::size_t>(bytes, 4));
  return scratch_.back().floats();
}

void CudnnProgram::reserve_workspace(std::size_t bytes) {
  if (bytes <= workspace_.bytes()) return;
  synchronize("workspace");
  workspace_ = DeviceBuffer(bytes);
}

const float* CudnnProgram::ones(std::int64_t n) {
  const auto bytes = static_cast<std::size_t>(n) * sizeof(float);
  if (ones_.bytes() < bytes) {
    // Steps keep the pointers they were given: an outgrown vector stays alive in scratch_.
    if (ones_.get()) scratch_.push_back(std::move(ones_));
    ones_ = DeviceBuffer(bytes);
    kernels::fill(ones_.floats(), 1.0f, n, stream_);
  }
  return ones_.floats();
}

// ---- running
// ---------------------------------------------------------------------------------------

void CudnnProgram::synchronize(const char* what) const {
  check(cudaStreamSynchronize(stream_), what);
}

void CudnnProgram::forward(Mode mode) {
  if (mode == Mode::training && !options_.training) {
    fail("cudnn backend: forward(training) needs a Program compiled with training = true");
  }
  if (!label_nodes_.empty()) {
    if (!bad_label_.get()) bad_label_ = DeviceBuffer(sizeof(int));
    check(cudaMemsetAsync(bad_label_.get(), 0, sizeof(int), stream_), "cudaMemsetAsync");
  }
  for (const auto& step : forward_) step(mode);
  have_training_forward_ = mode == Mode::training;
  if (!label_nodes_.empty()) {
    int bad = 0;
    check(cudaMemcpyAsync(&bad, bad_label_.get(), sizeof(int), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync");
    synchronize("forward");
    if (bad) {
      fail("node '{}' (SoftmaxCrossEntropy): a label is outside [0, number of classes)",
           label_nodes_.front());
    }
  }
}

void CudnnProgram::seed_and_run_backward(const std::map<std::string, Tensor>& seeds,
                                         bool seed_loss) {
  if (!options_.training) {
    fail("cudnn backend: backward needs a Program compiled with training = true and a loss");
  }
  if (!have_training_forward_) fail("cudnn backend: backward needs forward(Mode::training) first");
  for (const auto& [name, seed] : seeds) {
    const Value& v = value(name);
    if (!v.grad.get()) {
      fail(
          "cudnn backend: cannot seed '{}': only the loss, graph outputs and values in "
          "CompileOptions::keep that depend on a trainable parameter (or an input with "
          "input_gradients) can be seeded",
          name);
    }
    if (element_count(seed.shape()) != v.count) {
      fail("cudnn backend: seed for '{}' has shape {}, expected {}", name, to_string(seed.shape()),
           to_string(v.shape));
    }
  }
  for (auto& [name, v] : values_) {
    if (v.grad.get()) {
      check(cudaMemsetAsync(v.grad.get(), 0, v.grad.bytes(), stream_), "cudaMemsetAsync");
    }
  }
  for (const auto& [name, seed] : seeds) {
    Value& v = value(name);
    write(v, v.grad, seed.reshaped(v.shape), "seed");
  }
  if (seed_loss) {
    Value& loss = value(options_.loss);
    if (loss.grad.get()) kernels::fill(loss.g(), 1.0f, 1, stream_);
  }
  for (auto it = backward_.rbegin(); it != backward_.rend(); ++it) (*it)();
  synchronize("backward");
}

void CudnnProgram::backward() { seed_and_run_backward({}, true); }

void CudnnProgram::backward(const std::map<std::string, Tensor>& seeds) {
  seed_and_run_backward(seeds, false);
}

// ---- edges
// -----------------------------------------------------------------------------------------

Tensor CudnnProgram::read(const Value& v, const DeviceBuffer& buffer) const {
  const bool ints = v.dtype == DType::i64 && &buffer == &v.data;
  Tensor t(ints ? DType::i64 : DType::f32, v.shape);
  if (t.byte_size() > buffer.bytes()) fail("cudnn backend (internal): '{}' is short", v.name);
  check(cudaMemcpyAsync(t.raw(), buffer.get(), t.byte_size(), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync (device to host)");
  synchronize("fetch");
  return t;
}

void CudnnProgram::write(Value& v, DeviceBuffer& buffer, const Tensor& t, const char* what) {
  if (element_count(t.shape()) != v.count) {
    fail("cudnn backend: {} '{}' has shape {}, got a tensor of shape {}", what, v.name,
         to_string(v.shape), to_string(t.shape()));
  }
  const bool ints = v.dtype == DType::i64 && &buffer == &v.data;
  if (ints && t.dtype() != DType::i64) {
    fail("cudnn backend: '{}' expects i64 values, got {}", v.name, to_string(t.dtype()));
  }
  if (!ints && !is_floating(t.dtype())) {
    fail("cudnn backend: '{}' expects floating values, got {}", v.name, to_string(t.dtype()));
  }
  const Tensor converted = ints || t.dtype() == DType::f32 ? t : t.to(DType::f32);
  // Synchronous: the host tensor may go away as soon as this returns.
  check(cudaMemcpyAsync(buffer.get(), converted.raw(), converted.byte_size(),
                        cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync (host to device)");
  synchronize(what);
}

void CudnnProgram::set_input(const std::string& name, const Tensor& t) {
  if (!graph_.is_input(name)) fail("cudnn backend: '{}' is not an input of the graph", name);
  Value& v = value(name);
  if (t.shape() != v.shape) {
    fail("cudnn backend: input '{}' expects shape {}, got {}", name, to_string(v.shape),
         to_string(t.shape()));
  }
  write(v, v.data, t, "input");
}

Tensor CudnnProgram::fetch(const std::string& name) const {
  const Value& v = value(name);
  Tensor t = read(v, v.data);
  if (v.dtype != DType::i64 && v.dtype != DType::f32) return t.to(v.dtype);
  return t;
}

Value& CudnnProgram::trainable(const std::string& name) {
  Value& v = value(name);
  if (!v.parameter || !v.trainable) {
    fail("cudnn backend: '{}' is not a trainable parameter (gradients exist only for those)", name);
  }
  return v;
}

const Value& CudnnProgram::trainable(const std::string& name) const {
  return const_cast<CudnnProgram*>(this)->trainable(name);
}

Tensor CudnnProgram::gradient(const std::string& name) const {
  if (!options_.training) fail("cudnn backend: gradients need a Program compiled for training");
  const Value& v = value(name);
  const bool input = graph_.is_input(name) && options_.input_gradients;
  if (!input) trainable(name);
  if (!v.grad.get()) return Tensor(DType::f32, v.shape);
  return read(v, v.grad);
}

void CudnnProgram::set_gradient(const std::string& name, const Tensor& t) {
  if (!options_.training) fail("cudnn backend: gradients need a Program compiled for training");
  Value& v = trainable(name);
  if (t.shape() != v.shape) {
    fail("cudnn backend: gradient of '{}' has shape {}, got {}", name, to_string(v.shape),
         to_string(t.shape()));
  }
  write(v, v.grad, t, "gradient");
}

double CudnnProgram::gradient_norm() const {
  check(cudaMemsetAsync(norm_.get(), 0, sizeof(double), stream_), "cudaMemsetAsync");
  for (const auto& name : trainable_) {
    const Value& v = value(name);
    if (v.grad.get())
      kernels::sum_of_squares(v.g(), v.count, static_cast<double*>(norm_.get()), stream_);
  }
  double sum = 0.0;
  check(cudaMemcpyAsync(&sum, norm_.get(), sizeof(double), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync");
  synchronize("gradient_norm");
  return std::sqrt(sum);
}

void CudnnProgram::update(const OptimizerSpec& spec, double gradient_scale) {
  if (!options_.training) fail("cudnn backend: update needs a Program compiled for training");
  const bool adam = spec.kind != OptimizerSpec::Kind::sgd;
  ++step_;
  kernels::OptimizerStep s;
  s.kind = spec.kind == OptimizerSpec::Kind::sgd    ? 0
           : spec.kind == OptimizerSpec::Kind::adam ? 1
                                                    : 2;
  s.learning_rate = spec.learning_rate;
  s.momentum = spec.momentum;
  s.nesterov = spec.nesterov;
  s.beta1 = spec.beta1;
  s.beta2 = spec.beta2;
  s.epsilon = spec.epsilon;
  s.weight_decay = spec.weight_decay;
  s.correction1 = adam ? 1.0 - std::pow(spec.beta1, static_cast<double>(step_)) : 1.0;
  s.correction2 = adam ? 1.0 - std::pow(spec.beta2, static_cast<double>(step_)) : 1.0;
  s.gradient_scale = gradient_scale;
  for (const auto& name : trainable_) {
    Value& v = value(name);
    const std::size_t bytes = static_cast<std::size_t>(v.count) * sizeof(float);
    Slots& slots = slots_[name];
    if (slots.a.bytes() != bytes) slots.a = DeviceBuffer(bytes);
    if (adam && slots.b.bytes() != bytes) slots.b = DeviceBuffer(bytes);
    kernels::optimizer_step(s, v.f(), v.g(), slots.a.floats(), adam ? slots.b.floats() : nullptr,
                            v.count, stream_);
  }
  slot_kind_ = spec.kind;
  synchronize("update");
}

Tensor CudnnProgram::parameter(const std::string& name) const {
  const Value& v = value(name);
  if (!v.parameter) fail("cudnn backend: '{}' is not an initializer of the graph", name);
  Tensor t = read(v, v.data);
  if (v.dtype != DType::i64 && v.dtype != DType::f32) return t.to(v.dtype);
  return t;
}

void CudnnProgram::set_parameter(const std::string& name, const Tensor& t) {
  Value& v = value(name);
  if (!v.parameter) fail("cudnn backend: '{}' is not an initializer of the graph", name);
  if (t.shape() != v.shape) {
    fail("cudnn backend: parameter '{}' has shape {}, got {}", name, to_string(v.shape),
         to_string(t.shape()));
  }
  write(v, v.data, t, "parameter");
}

std::map<std::string, Tensor> CudnnProgram::optimizer_state() const {
  std::map<std::string, Tensor> state;
  state["step"] = Tensor::from<std::int64_t>({}, std::vector<std::int64_t>{step_});
  if (!slot_kind_) return state;
  const bool adam = *slot_kind_ != OptimizerSpec::Kind::sgd;
  auto copy = [&](const Value& v, const DeviceBuffer& buffer) {
    Tensor t(DType::f32, v.shape);
    check(cudaMemcpyAsync(t.raw(), buffer.get(), t.byte_size(), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync");
    synchronize("optimizer_state");
    return t;
  };
  for (const auto& name : trainable_) {
    auto it = slots_.find(name);
    if (it == slots_.end()) continue;
    const Value& v = value(name);
    if (adam) {
      state[name + "/m"] = copy(v, it->second.a);
      state[name + "/v"] = copy(v, it->second.b);
    } else {
      state[name + "/velocity"] = copy(v, it->second.a);
    }
  }
  return state;
}

void CudnnProgram::set_optimizer_state(const std::map<std::string, Tensor>& state) {
  std::optional<OptimizerSpec::Kind> kind;
  for (const auto& [key, t] : state) {
    if (key == "step") {
      step_ = optimizer_step(t);
      continue;
    }
    const OptimizerSlotKey slot = parse_optimizer_slot_key("cudnn", key);
    Value& v = trainable(slot.parameter);
    if (t.shape() != v.shape) {
      fail("cudnn backend: optimizer state '{}' has shape {}, expected {}", key,
           to_string(t.shape()), to_string(v.shape));
    }
    const Tensor f = t.to(DType::f32);
    const std::size_t bytes = static_cast<std::size_t>(v.count) * sizeof(float);
    Slots& slots = slots_[slot.parameter];
    DeviceBuffer* target = slot.second ? &slots.b : &slots.a;
    if (target->bytes() != bytes) *target = DeviceBuffer(bytes);
    check(cudaMemcpyAsync(target->get(), f.raw(), bytes, cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync");
    synchronize("set_optimizer_state");
    kind = slot.kind;
  }
  if (kind) slot_kind_ = kind;
}

}  // namespace onnxforge::cudnn
