// Internals of the cudnn backend: device memory, the Program and its plans. Every value of the
// graph has its own device buffer (plain row-major, f32; i64 for class labels); every value that
// needs a gradient has a gradient buffer, zeroed at the start of backward, into which the
// backward steps of its consumers accumulate (cuDNN / cuBLAS with beta = 1, kernels with +=).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.hpp"
#include "backends/cudnn/cudnn_backend.hpp"
#include "backends/cudnn/lower.hpp"
#include "backends/program_base.hpp"

namespace onnxforge::cudnn {

// Throw Error naming `what` on a failed CUDA / cuDNN / cuBLAS call.
void check(cudaError_t status, const char* what);
void check(cudnnStatus_t status, const char* what);
void check(cublasStatus_t status, const char* what);

// Owned device memory, zero-filled at allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  float* floats() const { return static_cast<float*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

// cuDNN descriptors, owned (shared by the steps that use them).
struct TensorDesc {
  cudnnTensorDescriptor_t desc = nullptr;
  TensorDesc();
  ~TensorDesc();
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};
// An NCHW f32 descriptor of a shape: rank 4 as is, lower ranks padded with trailing 1s, higher
// ranks with the trailing dimensions folded into W.
std::shared_ptr<TensorDesc> tensor_desc(const Shape& shape);
std::shared_ptr<TensorDesc> tensor_desc_4d(std::int64_t n, std::int64_t c, std::int64_t h,
                                           std::int64_t w);

struct Value {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  std::int64_t count = 0;
  DeviceBuffer data;  // f32 (or i64)
  DeviceBuffer grad;  // f32, when the value needs a gradient
  bool parameter = false;
  bool trainable = false;
  bool seedable = false;  // a root of backward (loss, output, kept value)

  float* f() const { return data.floats(); }
  float* g() const { return grad.floats(); }
};

class CudnnProgram final : public ProgramBase {
 public:
  CudnnProgram(const Graph& graph, const CompileOptions& options);
  ~CudnnProgram() override;

  void forward(Mode mode) override;
  Tensor fetch(const std::string& value) const override;
  void backward() override;
  void backward(const std::map<std::string, Tensor>& seeds) override;

  // ---- used by the op lowerings (lower/<family>.cpp) ----
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  cudaStream_t stream() const { return stream_; }
  Value& value(const std::string& name);
  const Value& value(const std::string& name) const;
  // The gradient buffer of input `index` of `node` when backward must compute it, else null.
  float* input_gradient(const Node& node, std::size_t index);
  // The gradient of a node output (always present when the node has a backward step).
  float* output_gradient(const Node& node, std::size_t index = 0);
  bool needs_gradient(const std::string& name) const { return needs_grad_.count(name) != 0; }

  // Forward steps get the mode; backward steps run in reverse order of registration.
  void add_forward(std::function<void(Mode)> step) { forward_.push_back(std::move(step)); }
  void add_backward(std::function<void()> step) { backward_.push_back(std::move(step)); }
  // Device scratch owned by the Program (zero-filled), alive as long as it.
  float* scratch(std::size_t bytes);
  // The shared workspace: grows to at least `bytes` at compile time; steps read workspace()
  // when they run.
  void reserve_workspace(std::size_t bytes);
  void* workspace() const { return workspace_.get(); }
  std::size_t workspace_size() const { return workspace_.bytes(); }
  // What cudnnFind*Ex may use while choosing algorithms.
  std::size_t workspace_limit() const { return workspace_limit_; }
  // Scratch for cudnnFind*Ex (workspace_limit() bytes), released when compilation ends.
  void* search_workspace();
  // A device vector of ones of at least n elements (bias gradients through gemv).
  const float* ones(std::int64_t n);
  // Device flag set by a SoftmaxCrossEntropy on a label out of range.
  int* bad_label_flag() { return bad_label_.get() ? static_cast<int*>(bad_label_.get()) : nullptr; }
  void watch_labels(const std::string& node) { label_nodes_.push_back(node); }

 private:
  void lower_all();
  void release() noexcept;
  void build();
  void seed_and_run_backward(const std::map<std::string, Tensor>& seeds, bool seed_loss);
  void synchronize(const char* what) const;
  Tensor read(const Value& v, const DeviceBuffer& buffer) const;
  void write(Value& v, DeviceBuffer& buffer, const Tensor& t, const char* what);

  // ---- storage hooks of ProgramBase ----
  void write_input(const std::string& name, const Tensor& value) override;
  Tensor read_parameter(const std::string& name) const override;
  void write_parameter(const std::string& name, const Tensor& value) override;
  Tensor read_gradient(const std::string& name) const override;
  void write_gradient(const std::string& name, const Tensor& value) override;
  double gradient_sum_of_squares(const std::string& name) const override;
  double sum_of_gradient_squares() const override;
  void update_parameter(const std::string& name, const UpdateStep& step) override;
  void update_parameters(const UpdateStep& step) override;
  std::optional<Tensor> read_optimizer_slot(const std::string& name, bool second) const override;
  void write_optimizer_slot(const std::string& name, bool second, const Tensor& value) override;
  // Sums the squares of the gradient of `v` into norm_ (on the stream).
  void accumulate_squares(const Value& v) const;

  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::map<std::string, Value> values_;
  std::set<std::string> needs_grad_;
  std::vector<std::function<void(Mode)>> forward_;
  std::vector<std::function<void()>> backward_;
  std::vector<DeviceBuffer> scratch_;
  DeviceBuffer workspace_;
  std::size_t workspace_limit_ = 0;
  DeviceBuffer search_;
  DeviceBuffer ones_;
  DeviceBuffer bad_label_;
  std::vector<std::string> label_nodes_;
  mutable DeviceBuffer norm_;  // one double
  bool have_training_forward_ = false;

  struct Slots {
    DeviceBuffer a;  // velocity (sgd) or m (adam)
    DeviceBuffer b;  // v (adam)
  };
  std::map<std::string, Slots> slots_;
};

}  // namespace onnxforge::cudnn
