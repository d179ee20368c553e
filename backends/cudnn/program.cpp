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
    : ProgramBase(graph, options, "cudnn") {
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

  if (options_.training) {
    const std::vector<std::string> roots = backward_roots();
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
    if (init.trainable && options_.training && !v.grad.get()) {
      v.grad = DeviceBuffer(static_cast<std::size_t>(v.count) * sizeof(float));
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

Value& CudnnProgram::value(const std::string& name) { return value_in(values_, name); }

const Value& CudnnProgram::value(const std::string& name) const { return value_in(values_, name); }

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

void CudnnProgram::write_input(const std::string& name, const Tensor& t) {
  check_input_dtype(name, t);
  write(value(name), value(name).data, t, "input");
}

Tensor CudnnProgram::fetch(const std::string& name) const {
  const Value& v = value(name);
  Tensor t = read(v, v.data);
  if (v.dtype != DType::i64 && v.dtype != DType::f32) return t.to(v.dtype);
  return t;
}

Tensor CudnnProgram::read_gradient(const std::string& name) const {
  const Value& v = value(name);
  if (!v.grad.get()) return Tensor(DType::f32, v.shape);
  return read(v, v.grad);
}

void CudnnProgram::write_gradient(const std::string& name, const Tensor& t) {
  Value& v = value(name);
  write(v, v.grad, t, "gradient");
}

void CudnnProgram::accumulate_squares(const Value& v) const {
  if (v.grad.get()) {
    kernels::sum_of_squares(v.g(), v.count, static_cast<double*>(norm_.get()), stream_);
  }
}

double CudnnProgram::gradient_sum_of_squares(const std::string& name) const {
  check(cudaMemsetAsync(norm_.get(), 0, sizeof(double), stream_), "cudaMemsetAsync");
  accumulate_squares(value(name));
  double sum = 0.0;
  check(cudaMemcpyAsync(&sum, norm_.get(), sizeof(double), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync");
  synchronize("gradient_norm");
  return sum;
}

// All gradients' squares summed on the device, one synchronisation.
double CudnnProgram::sum_of_gradient_squares() const {
  check(cudaMemsetAsync(norm_.get(), 0, sizeof(double), stream_), "cudaMemsetAsync");
  for (const auto& name : trainable_parameters()) accumulate_squares(value(name));
  double sum = 0.0;
  check(cudaMemcpyAsync(&sum, norm_.get(), sizeof(double), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync");
  synchronize("gradient_norm");
  return sum;
}

namespace {

// The kernel's form of one step: the spec with the bias corrections of this step.
kernels::OptimizerStep kernel_step(const UpdateStep& step) {
  const OptimizerSpec& spec = step.spec;
  const bool adam = step.adam();
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
  s.correction1 = adam ? 1.0 - std::pow(spec.beta1, static_cast<double>(step.step)) : 1.0;
  s.correction2 = adam ? 1.0 - std::pow(spec.beta2, static_cast<double>(step.step)) : 1.0;
  s.gradient_scale = step.gradient_scale;
  return s;
}

}  // namespace

void CudnnProgram::update_parameters(const UpdateStep& step) {
  ProgramBase::update_parameters(step);
  synchronize("update");
}

void CudnnProgram::update_parameter(const std::string& name, const UpdateStep& step) {
  const bool adam = step.adam();
  Value& v = value(name);
  const std::size_t bytes = static_cast<std::size_t>(v.count) * sizeof(float);
  Slots& slots = slots_[name];
  if (slots.a.bytes() != bytes) slots.a = DeviceBuffer(bytes);
  if (adam && slots.b.bytes() != bytes) slots.b = DeviceBuffer(bytes);
  kernels::optimizer_step(kernel_step(step), v.f(), v.g(), slots.a.floats(),
                          adam ? slots.b.floats() : nullptr, v.count, stream_);
}

Tensor CudnnProgram::read_parameter(const std::string& name) const {
  const Value& v = value(name);
  Tensor t = read(v, v.data);
  if (v.dtype != DType::i64 && v.dtype != DType::f32) return t.to(v.dtype);
  return t;
}

void CudnnProgram::write_parameter(const std::string& name, const Tensor& t) {
  Value& v = value(name);
  write(v, v.data, t, "parameter");
}

std::optional<Tensor> CudnnProgram::read_optimizer_slot(const std::string& name,
                                                        bool second) const {
  auto it = slots_.find(name);
  if (it == slots_.end()) return std::nullopt;
  const DeviceBuffer& buffer = second ? it->second.b : it->second.a;
  if (!buffer.get()) return std::nullopt;
  Tensor t(DType::f32, value(name).shape);
  check(cudaMemcpyAsync(t.raw(), buffer.get(), t.byte_size(), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync");
  synchronize("optimizer_state");
  return t;
}

void CudnnProgram::write_optimizer_slot(const std::string& name, bool second, const Tensor& t) {
  const Value& v = value(name);
  const std::size_t bytes = static_cast<std::size_t>(v.count) * sizeof(float);
  Slots& slots = slots_[name];
  DeviceBuffer* target = second ? &slots.b : &slots.a;
  if (target->bytes() != bytes) *target = DeviceBuffer(bytes);
  check(cudaMemcpyAsync(target->get(), t.raw(), bytes, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync");
  synchronize("set_optimizer_state");
}

}  // namespace onnxforge::cudnn
