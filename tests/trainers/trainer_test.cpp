// The training loop on the reference backend with tiny in-memory data: optimizers against their
// closed forms, overfitting a tiny set, exact resume, atomic checkpoints under kill -9, NaN
// detection, and one-line config errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <set>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "graph/builder.hpp"
#include "importers/onnx_import.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/tiny_images.hpp"
#include "trainers/checkpoint.hpp"
#include "trainers/config.hpp"
#include "trainers/trainer.hpp"
#include "trainers/transfer.hpp"

namespace onnxforge::train {
namespace {

namespace fs = std::filesystem;
using onnxforge::testing::tiny_images;

fs::path temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("onnxforge_trainer_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

#define EXPECT_ERROR(statement, ...)                                                   \
  do {                                                                                 \
    try {                                                                              \
      statement;                                                                       \
      ADD_FAILURE() << "no error from: " #statement;                                   \
    } catch (const std::exception& e) {                                                \
      const std::string message = e.what();                                            \
      EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message; \
      for (const char* fragment : std::vector<const char*>{__VA_ARGS__}) {             \
        EXPECT_NE(message.find(fragment), std::string::npos)                           \
            << "message '" << message << "' lacks '" << fragment << "'";               \
      }                                                                                \
    }                                                                                  \
  } while (0)

// ---- optimizers against their closed forms ------------------------------------------------------

TEST(Optimizers, SgdMomentumAndNesterovClosedForm) {
  // Two steps with gradient g each: v1 = -lr g, w1 = w0 - lr g; v2 = m v1 - lr g.
  const double lr = 0.1, m = 0.9, g = 2.0, w0 = 1.0;
  std::vector<double> w{w0}, grad{g}, velocity{0.0};
  OptimizerSpec spec{.kind = OptimizerSpec::Kind::sgd, .learning_rate = lr, .momentum = m};
  for (int step = 1; step <= 2; ++step) {
    apply_optimizer<double>(spec, step, 1.0, w, grad, velocity, {});
  }
  EXPECT_DOUBLE_EQ(w[0], w0 - lr * g + (m * (-lr * g) - lr * g));
  std::vector<double> wn{w0}, vn{0.0};
  spec.nesterov = true;
  for (int step = 1; step <= 2; ++step) apply_optimizer<double>(spec, step, 1.0, wn, grad, vn, {});
  // Nesterov: w += m v_t - lr g.
  const double v1 = -lr * g, v2 = m * v1 - lr * g;
  EXPECT_DOUBLE_EQ(wn[0], w0 + (m * v1 - lr * g) + (m * v2 - lr * g));
}

TEST(Optimizers, AdamFirstStepsClosedForm) {
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-7;
  std::vector<double> w{0.5, -0.25}, g1{0.3, -2.0}, g2{-0.1, 1.0}, m{0, 0}, v{0, 0};
  OptimizerSpec spec{.kind = OptimizerSpec::Kind::adam, .learning_rate = lr, .epsilon = eps};
  apply_optimizer<double>(spec, 1, 1.0, w, g1, m, v);
  // Step 1: m_hat = g, v_hat = g^2 -> w -= lr * g / (|g| + eps).
  EXPECT_DOUBLE_EQ(w[0], 0.5 - lr * 0.3 / (0.3 + eps));
  EXPECT_DOUBLE_EQ(w[1], -0.25 + lr * 2.0 / (2.0 + eps));
  const double w_before = w[0];
  apply_optimizer<double>(spec, 2, 1.0, w, g2, m, v);
  const double m2 = b1 * (1 - b1) * 0.3 + (1 - b1) * -0.1;
  const double v2 = b2 * (1 - b2) * 0.09 + (1 - b2) * 0.01;
  const double expected =
      w_before - lr * (m2 / (1 - b1 * b1)) / (std::sqrt(v2 / (1 - b2 * b2)) + eps);
  EXPECT_NEAR(w[0], expected, 1e-15);
}

TEST(Optimizers, AdamWDecouplesWeightDecayAndSgdAddsL2) {
  std::vector<double> w{2.0}, g{0.0}, m{0}, v{0};
  OptimizerSpec adamw{
      .kind = OptimizerSpec::Kind::adamw, .learning_rate = 0.1, .weight_decay = 0.01};
  apply_optimizer<double>(adamw, 1, 1.0, w, g, m, v);
  EXPECT_DOUBLE_EQ(w[0], 2.0 - 0.1 * 0.01 * 2.0);  // zero gradient: only the decay
  std::vector<double> ws{2.0}, vs{0};
  OptimizerSpec sgd{.kind = OptimizerSpec::Kind::sgd, .learning_rate = 0.1, .weight_decay = 0.01};
  apply_optimizer<double>(sgd, 1, 0.5, ws, g, vs, {});
  EXPECT_DOUBLE_EQ(ws[0], 2.0 - 0.1 * (0.01 * 2.0));
  std::vector<double> wc{1.0}, gc{4.0}, vc{0};
  apply_optimizer<double>(OptimizerSpec{.learning_rate = 0.1}, 1, 0.25, wc, gc, vc, {});
  EXPECT_DOUBLE_EQ(wc[0], 1.0 - 0.1 * 1.0);  // gradient scaled by 0.25 (clipping)
}

// ---- the loop on tiny data ----------------------------------------------------------------------

Graph tiny_model(std::uint64_t seed, bool with_dropout = false) {
  Builder b("tiny", seed);
  auto x = b.input("image", {kDynamic, 3, 8, 8});
  x = b.relu(b.conv2d(x, {.filters = 4, .kernel = {3, 3}}));
  x = b.max_pool(x, {.kernel = {2, 2}});
  x = b.flatten(x);
  if (with_dropout) x = b.dropout(x, 0.2);
  x = b.sigmoid(b.dense(x, 1));
  b.output(x);
  return b.build();
}

TrainConfig tiny_config(int epochs) {
  TrainConfig c = parse_config(R"(
name = "tiny"
[model]
input = [3, 8, 8]
[data]
train = "in-memory"
val = "in-memory"
[train]
epochs = 1
batch_size = 8
backend = "reference"
[optimizer]
name = "adam"
lr = 0.01
)",
                               "tiny.toml");
  c.train.epochs = epochs;
  return c;
}

TrainData tiny_data() { return {tiny_images(32, 1), tiny_images(16, 2), std::nullopt}; }

TrainOptions quiet(const fs::path& dir) {
  TrainOptions o;
  o.run_dir = dir;
  o.final_evaluation = false;
  o.print = [](const std::string&) {};
  return o;
}

// quiet(dir), resuming the run in `dir`.
TrainOptions resuming(const fs::path& dir) {
  TrainOptions o = quiet(dir);
  o.resume = true;
  return o;
}

// Trains tiny_config(1) in `dir`; returns its checkpoints/last.ckpt.
fs::path train_one_epoch(const fs::path& dir) {
  train_model(tiny_config(1), tiny_model(3), tiny_data(), quiet(dir));
  return dir / "checkpoints" / "last.ckpt";
}

TEST(TrainLoop, TinyModelOverfitsTinyDataset) {
  const auto dir = temp_dir("overfit");
  const auto result = train_model(tiny_config(25), tiny_model(3), tiny_data(), quiet(dir));
  ASSERT_EQ(result.history.size(), 25u);
  EXPECT_EQ(result.history.back().train_accuracy, 1.0);
  EXPECT_EQ(result.history.back().val_accuracy, 1.0);
  EXPECT_LT(result.history.back().train_loss, result.history.front().train_loss / 4);
  EXPECT_TRUE(fs::exists(dir / "history.csv"));
  EXPECT_TRUE(fs::exists(dir / "config.toml"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "best.ckpt"));
  // The resolved config reads back to the same config.
  const TrainConfig again = load_config(dir / "config.toml");
  EXPECT_EQ(to_toml(again), to_toml(tiny_config(25)));
  fs::remove_all(dir);
}

TEST(TrainLoop, ResumeEndsAtTheWeightsOfAnUninterruptedRun) {
  const auto straight = temp_dir("straight");
  const auto split = temp_dir("split");
  TrainConfig config = tiny_config(4);
  config.optimizer.kind = OptimizerSpec::Kind::sgd;
  config.optimizer.momentum = 0.9;
  config.augment.flip_probability = 0.5;
  config.augment.brightness = 0.2;
  const Graph model = tiny_model(5, /*with_dropout=*/true);
  const auto a = train_model(config, model, tiny_data(), quiet(straight));

  TrainConfig first_half = config;
  first_half.train.epochs = 2;
  train_model(first_half, model, tiny_data(), quiet(split));
  const auto b = train_model(config, model, tiny_data(), resuming(split));

  ASSERT_EQ(b.history.size(), 4u);
  for (const auto& init : a.training_graph.graph.initializers) {
    const Tensor wa = a.program->parameter(init.name);
    const Tensor wb = b.program->parameter(init.name);
    for (std::int64_t i = 0; i < wa.size(); ++i) {
      EXPECT_NEAR(wa.value(i), wb.value(i), 1e-6 * std::max(1.0, std::abs(wa.value(i))))
          << init.name << "[" << i << "]";
    }
  }
  // The reference backend keeps double weights in memory but checkpoints f32: equal to 1e-6.
  EXPECT_NEAR(a.history.back().train_loss, b.history.back().train_loss, 1e-6);
  fs::remove_all(straight);
  fs::remove_all(split);
}

TEST(TrainLoop, EarlyStoppingRestoresTheBestWeights) {
  const auto dir = temp_dir("early");
  TrainConfig config = tiny_config(30);
  config.optimizer.learning_rate = 0.05;
  config.early_stopping.patience = 2;
  config.early_stopping.min_delta = 10.0;  // nothing counts as an improvement after epoch 1
  const auto result = train_model(config, tiny_model(3), tiny_data(), quiet(dir));
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.history.size(), 3u);
  const Checkpoint best = load_checkpoint(dir / "checkpoints" / "best.ckpt");
  for (const auto& [name, value] : best.parameters) {
    EXPECT_EQ(result.program->parameter(name), value) << name;
  }
  fs::remove_all(dir);
}

TEST(TrainLoop, ValAucMonitorKeepsTheEpochOfTheHighestValidationAuc) {
  const auto dir = temp_dir("auc");
  TrainConfig config = tiny_config(6);
  config.optimizer.learning_rate = 0.002;  // slow enough for the AUC to move between epochs
  config.early_stopping.monitor = "val_auc";
  config.checkpoint.monitor = "val_auc";
  const auto result = train_model(config, tiny_model(3), tiny_data(), quiet(dir));
  ASSERT_EQ(result.history.size(), 6u);
  double best = -1.0;
  int best_epoch = 0;
  for (const auto& r : result.history) {
    ASSERT_TRUE(std::isfinite(r.val_auc)) << "epoch " << r.epoch;
    if (r.val_auc > best) {
      best = r.val_auc;
      best_epoch = static_cast<int>(r.epoch);
    }
  }
  EXPECT_EQ(result.best_epoch, best_epoch);
  EXPECT_TRUE(higher_is_better("val_auc"));
  EXPECT_THROW(parse_config("[early_stopping]\nmonitor = \"val_f1\"\n", "bad.toml"), Error);
  fs::remove_all(dir);
}

TEST(TrainLoop, PositiveClassMustBeAClassOfTheData) {
  const auto dir = temp_dir("positive");
  TrainConfig config = tiny_config(1);
  config.train.positive_class = "Cat";
  try {
    train_model(config, tiny_model(3), tiny_data(), quiet(dir));
    FAIL() << "an unknown positive class was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("positive_class 'Cat'"), std::string::npos) << what;
    EXPECT_NE(what.find("'Female', 'Male'"), std::string::npos) << what;
  }
  // Either class name is taken, and the metrics count it as positive.
  config.train.positive_class = "Female";
  const auto result = train_model(config, tiny_model(3), tiny_data(), quiet(dir));
  EXPECT_EQ(result.history.size(), 1u);
  fs::remove_all(dir);
}

TEST(TrainLoop, TrainingAccuracyUsesTheConfiguredThreshold) {
  // Above every probability: each image is predicted negative, so the training accuracy is the
  // share of label 0 (half of tiny_images), as the validation accuracy is.
  const auto dir = temp_dir("threshold");
  TrainConfig config = tiny_config(1);
  config.train.threshold = 1.5;
  const auto result = train_model(config, tiny_model(3), tiny_data(), quiet(dir));
  EXPECT_DOUBLE_EQ(result.history.back().train_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(result.history.back().val_accuracy, 0.5);
  fs::remove_all(dir);
}

TEST(TrainLoop, NanLossStopsWithEpochAndStepAndKeepsTheLastCheckpoint) {
  const auto dir = temp_dir("nan");
  const auto before = load_checkpoint(train_one_epoch(dir));
  TrainConfig config = tiny_config(3);
  config.optimizer.kind = OptimizerSpec::Kind::sgd;
  config.optimizer.learning_rate = 1e30;  // the weights overflow within a step or two
  EXPECT_ERROR(train_model(config, tiny_model(3), tiny_data(), resuming(dir)), "loss is", "epoch 2",
               "step", "last.ckpt");
  const auto after = load_checkpoint(dir / "checkpoints" / "last.ckpt");
  EXPECT_EQ(after.state.at("next_epoch"), 1);
  EXPECT_EQ(after.parameters.at("dense/kernel"), before.parameters.at("dense/kernel"));
  fs::remove_all(dir);
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file below `dir` with its bytes.
std::map<fs::path, std::string> folder_bytes(const fs::path& dir) {
  std::map<fs::path, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[e.path()] = file_bytes(e.path());
  }
  return files;
}

// Runs this test binary again as a fresh process running only the hidden test Child.DISABLED_<name>
// with ONNXFORGE_TEST_RUN_DIR=dir (fork alone is not enough: the TBB worker threads of earlier
// tests do not survive a fork, and a forked child that trains would wait for them forever). The
// child's fd 3 is `report_fd` when given. Returns its pid.
pid_t spawn_child(const std::string& name, const fs::path& dir, int report_fd = -1) {
  const std::string filter = "--gtest_filter=Child.DISABLED_" + name;
  const std::string env_dir = "ONNXFORGE_TEST_RUN_DIR=" + dir.string();
  std::vector<char*> argv{const_cast<char*>("/proc/self/exe"), const_cast<char*>(filter.c_str()),
                          const_cast<char*>("--gtest_also_run_disabled_tests"), nullptr};
  std::vector<char*> env{const_cast<char*>(env_dir.c_str())};
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    if (report_fd >= 0) ::dup2(report_fd, 3);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);  // the child's gtest chatter
    ::execve("/proc/self/exe", argv.data(), env.data());
    ::_exit(127);
  }
  return child;
}

// The children. Without ONNXFORGE_TEST_RUN_DIR (a plain run of the disabled tests) they skip.
const char* child_run_dir() { return std::getenv("ONNXFORGE_TEST_RUN_DIR"); }

TEST(Child, DISABLED_TrainUntilKilled) {
  if (!child_run_dir())
    GTEST_SKIP() << "only run by TrainLoop.KilledRunResumesFromItsLastCheckpoint";
  train_model(tiny_config(100000), tiny_model(3), tiny_data(), quiet(child_run_dir()));
}

TEST(Child, DISABLED_ResumeOnAFullDisk) {
  if (!child_run_dir()) GTEST_SKIP() << "only run by TrainLoop.FullDiskStopsWithOneLine...";
  // Files may not grow past half a checkpoint: the first checkpoint write fails with EFBIG, as a
  // full disk fails with ENOSPC. The error message goes to fd 3.
  const fs::path dir = child_run_dir();
  const auto half = fs::file_size(dir / "checkpoints" / "last.ckpt") / 2;
  ::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{half, half};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  std::string message = "no error";
  try {
    train_model(tiny_config(3), tiny_model(3), tiny_data(), resuming(dir));
  } catch (const std::exception& e) {
    message = e.what();
  }
  ASSERT_EQ(::write(3, message.data(), message.size()), static_cast<ssize_t>(message.size()));
}

TEST(TrainLoop, KilledRunResumesFromItsLastCheckpoint) {
  const auto dir = temp_dir("killed_run");
  const pid_t child = spawn_child("TrainUntilKilled", dir);
  ASSERT_GT(child, 0);
  // Killed once an epoch has been checkpointed, in the middle of whatever it is doing then.
  const fs::path last = dir / "checkpoints" / "last.ckpt";
  for (int i = 0; i < 6000 && !fs::exists(last); ++i) ::usleep(10'000);
  ::usleep(150'000);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended before it was killed: " << status;
  const int next_epoch = load_checkpoint(last).state.at("next_epoch");
  ASSERT_GE(next_epoch, 1);
  TrainConfig more = tiny_config(next_epoch + 1);
  const auto result = train_model(more, tiny_model(3), tiny_data(), resuming(dir));
  EXPECT_EQ(result.history.size(), static_cast<std::size_t>(next_epoch + 1));
  EXPECT_EQ(load_checkpoint(last).state.at("next_epoch"), next_epoch + 1);
  fs::remove_all(dir);
}

TEST(TrainLoop, ResumeFromACorruptedCheckpointIsRefusedAndChangesNothing) {
  const auto dir = temp_dir("corrupted_resume");
  const fs::path last = train_one_epoch(dir);
  {
    std::fstream f(last, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(last) / 2));
    const char byte = static_cast<char>(f.peek());
    f.seekp(static_cast<std::streamoff>(fs::file_size(last) / 2));
    f.put(static_cast<char>(~byte));
  }
  const auto before = folder_bytes(dir);
  EXPECT_ERROR(train_model(tiny_config(2), tiny_model(3), tiny_data(), resuming(dir)), "last.ckpt",
               "corrupted");
  const auto after = folder_bytes(dir);
  EXPECT_TRUE(before == after) << "the refused resume changed the run folder";
  fs::remove_all(dir);
}

TEST(TrainLoop, ResumeFromACheckpointWithAMalformedStateNamesTheFile) {
  const auto dir = temp_dir("malformed_state");
  const fs::path last = train_one_epoch(dir);
  const TrainConfig config = tiny_config(1);
  const TrainOptions resume = resuming(dir);
  Checkpoint c = load_checkpoint(last);
  c.state.erase("next_epoch");
  save_checkpoint(last, c);  // a valid file whose trainer state lacks a key
  EXPECT_ERROR(train_model(config, tiny_model(3), tiny_data(), resume), "last.ckpt",
               "trainer state", "next_epoch");
  c.state["next_epoch"] = 1e30;  // a float where a count belongs: refused, not cast
  save_checkpoint(last, c);
  EXPECT_ERROR(train_model(config, tiny_model(3), tiny_data(), resume), "last.ckpt",
               "trainer state", "next_epoch must be a count");
  c.state["history"] = {{1, 2}};  // a history row of 2 columns instead of 8
  c.state["next_epoch"] = 1;
  save_checkpoint(last, c);
  EXPECT_ERROR(train_model(config, tiny_model(3), tiny_data(), resume), "last.ckpt",
               "trainer state");
  // A NaN in the history (JSON writes it as null) reads back as NaN instead of failing.
  c.state["history"] = {{1, 0.7, 0.5, nullptr, 0.5, 0.01, 1, 100}};
  save_checkpoint(last, c);
  EXPECT_NO_THROW(train_model(config, tiny_model(3), tiny_data(), resume));
  fs::remove_all(dir);
}

TEST(TrainLoop, FullDiskStopsWithOneLineAndKeepsTheLastCheckpoint) {
  const auto dir = temp_dir("full_disk");
  const fs::path last = train_one_epoch(dir);
  const std::string before = file_bytes(last);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = spawn_child("ResumeOnAFullDisk", dir, fds[1]);
  ASSERT_GT(child, 0);
  ::close(fds[1]);
  const auto [message, status] = onnxforge::testing::finish_child(child, fds[0]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find("cannot write"), std::string::npos) << message;
  EXPECT_NE(message.find(".ckpt"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(file_bytes(last), before);
  EXPECT_EQ(load_checkpoint(last).state.at("next_epoch"), 1);
  for (const auto& e : fs::directory_iterator(dir / "checkpoints")) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
  fs::remove_all(dir);
}

// ---- transfer learning --------------------------------------------------------------------------

Graph tiny_backbone() {
  Builder b("backbone", 9);
  auto x = b.input("data", {kDynamic, 3, 16, 16});
  x = b.relu(b.conv2d(x, {.filters = 4, .kernel = {3, 3}, .name = "conv1"}));
  x = b.max_pool(x, {.kernel = {2, 2}, .name = "pool1"});
  x = b.relu(b.conv2d(x, {.filters = 2, .kernel = {1, 1}, .name = "conv2"}));
  x = b.sigmoid(b.dense(b.flatten(x), 1, {.name = "top"}));
  b.output(x);
  return b.build();
}

// tiny_config(1) for transfer learning from tiny_backbone() cut at pool1, with a head of one
// hidden dense layer of `head_units`.
TrainConfig tiny_transfer_config(std::int64_t head_units) {
  TrainConfig config = tiny_config(1);
  config.transfer.backbone = "tiny";
  config.transfer.cut_at = "pool1";
  config.transfer.head_units = {head_units};
  return config;
}

TEST(Transfer, CutFreezeAttachHeadCachedEqualsUncachedAndFrozenStayIdentical) {
  TrainConfig config = tiny_transfer_config(6);
  config.transfer.head_dropout = 0.25;
  const Graph backbone = prepare_backbone(tiny_backbone(), "pool1", {3, 8, 8});
  EXPECT_EQ(backbone.value(backbone.outputs.at(0)).shape, (Shape{kDynamic, 4, 3, 3}));
  EXPECT_EQ(backbone.find_initializer("conv2/kernel"), nullptr);  // cut away
  for (const auto& init : backbone.initializers) EXPECT_FALSE(init.trainable) << init.name;

  const auto cached_dir = temp_dir("cached");
  const auto uncached_dir = temp_dir("uncached");
  const auto cached = train_transfer(config, backbone, tiny_data(), quiet(cached_dir));
  config.transfer.cache_features = false;
  const auto uncached = train_transfer(config, backbone, tiny_data(), quiet(uncached_dir));
  EXPECT_TRUE(cached.cached);
  EXPECT_FALSE(uncached.cached);

  for (const auto& init : cached.model.initializers) {
    const Initializer* other = uncached.model.find_initializer(init.name);
    ASSERT_NE(other, nullptr) << init.name;
    if (backbone.find_initializer(init.name)) {
      // Frozen: byte-identical to the backbone's, on both paths.
      EXPECT_EQ(init.value, backbone.find_initializer(init.name)->value) << init.name;
      EXPECT_EQ(other->value, init.value) << init.name;
      continue;
    }
    for (std::int64_t i = 0; i < init.value.size(); ++i) {
      EXPECT_NEAR(init.value.value(i), other->value.value(i), 1e-5) << init.name << "[" << i << "]";
    }
  }
  // The trained head differs from its initialisation.
  const Graph head = make_head({4, 3, 3}, config.transfer, config.train.seed);
  EXPECT_NE(head.find_initializer("head_dense/kernel")->value,
            cached.model.find_initializer("head_dense/kernel")->value);
  fs::remove_all(cached_dir);
  fs::remove_all(uncached_dir);
}

TEST(Transfer, FineTunePhaseUnfreezesOnlyThePrefixAndTrainsIt) {
  TrainConfig config = tiny_transfer_config(4);
  config.transfer.fine_tune_epochs = 2;
  config.transfer.fine_tune_lr = 0.01;
  config.transfer.unfreeze = "conv1";
  const Graph backbone = prepare_backbone(tiny_backbone(), "pool1", {3, 8, 8});
  const auto dir = temp_dir("finetune");
  const auto result = train_transfer(config, backbone, tiny_data(), quiet(dir));
  EXPECT_TRUE(fs::exists(dir / "fine_tune" / "history.csv"));
  EXPECT_EQ(result.training.history.size(), 2u);
  EXPECT_TRUE(result.model.find_initializer("conv1/kernel")->trainable);
  EXPECT_NE(result.model.find_initializer("conv1/kernel")->value,
            backbone.find_initializer("conv1/kernel")->value);
  config.transfer.unfreeze = "no_such_layer";
  EXPECT_ERROR(train_transfer(config, backbone, tiny_data(), quiet(dir)), "no_such_layer");
  fs::remove_all(dir);
}

// Fine-tuning a real export (torch.onnx's resnet18 with its BatchNormalization nodes, from the
// corpus of tests/importers/real): the last two convolutions train at the fine-tuning rate, every
// other backbone parameter and every batch norm (scale, B, running statistics) stays as it was.
TEST(Transfer, FineTuneUnfreezesTheLastConvolutionsOfARealExport) {
  ImportOptions import;
  import.cut_at = "last-pool";
  const Graph imported = import_onnx(std::string(ONNXFORGE_SOURCE_DIR) +
                                         "/tests/importers/real/models/"
                                         "torch_resnet18_op13_dyn_preserve.onnx",
                                     import);
  const Graph backbone = prepare_backbone(imported, "", {3, 8, 8});
  std::vector<const Node*> convs;
  std::set<std::string> batch_norm;
  for (const auto& node : backbone.nodes) {
    if (node.is(OpId::Conv)) convs.push_back(&node);
    if (node.is(OpId::BatchNormalization))
      batch_norm.insert(node.inputs.begin() + 1, node.inputs.end());
  }
  ASSERT_GE(convs.size(), 3u);
  ASSERT_FALSE(batch_norm.empty());
  std::set<std::string> last_two;
  for (std::size_t i = convs.size() - 2; i < convs.size(); ++i) {
    last_two.insert(convs[i]->inputs.begin() + 1, convs[i]->inputs.end());
  }
  TrainConfig config = tiny_transfer_config(4);
  config.transfer.fine_tune_epochs = 2;
  config.transfer.fine_tune_lr = 0.01;
  config.transfer.unfreeze_last = 2;
  const auto dir = temp_dir("finetune-real");
  const auto result = train_transfer(config, backbone, tiny_data(), quiet(dir));
  for (const auto& init : backbone.initializers) {
    const auto* tuned = result.model.find_initializer(init.name);
    ASSERT_NE(tuned, nullptr) << init.name;
    if (last_two.count(init.name)) {
      EXPECT_TRUE(tuned->trainable) << init.name;
      EXPECT_NE(tuned->value, init.value) << init.name << " did not train";
    } else {
      EXPECT_FALSE(tuned->trainable) << init.name;
      EXPECT_EQ(tuned->value, init.value) << init.name << " changed";
    }
  }
  config.transfer.unfreeze_last = 1000;
  EXPECT_ERROR(train_transfer(config, backbone, tiny_data(), quiet(dir)), "convolutions");
  fs::remove_all(dir);
}

TEST(Transfer, FeatureCacheSpillsToDiskBeyondItsLimit) {
  const auto dir = temp_dir("spill");
  FeatureCache memory({2, 3}, 5, 1 << 20, dir);
  EXPECT_FALSE(memory.spilled());
  FeatureCache disk({2, 3}, 5, 16, dir);
  EXPECT_TRUE(disk.spilled());
  for (std::size_t i = 0; i < 5; ++i) disk.sample(i)[5] = static_cast<float>(i);
  EXPECT_EQ(disk.sample(4)[5], 4.0f);
  EXPECT_TRUE(fs::is_empty(dir));  // the mapped file is unlinked: nothing is left behind
  fs::remove_all(dir);
}

TEST(Transfer, BadCutOrSizeNamesTheNode) {
  EXPECT_ERROR(prepare_backbone(tiny_backbone(), "no_such_node", {3, 8, 8}), "no_such_node");
  EXPECT_ERROR(prepare_backbone(tiny_backbone(), "pool1", {3, 2, 2}), "pool1");
}

// ---- checkpoints --------------------------------------------------------------------------------

Checkpoint big_checkpoint(float fill) {
  Checkpoint c;
  Tensor t(DType::f32, {4, 1 << 20});  // 16 MiB: long enough to be killed mid-write
  for (auto& v : t.data<float>()) v = fill;
  c.parameters["w"] = t;
  c.state = {{"fill", fill}};
  return c;
}

TEST(Checkpoints, KillDuringSaveLeavesThePreviousCheckpointLoadable) {
  const auto dir = temp_dir("kill");
  const fs::path path = dir / "last.ckpt";
  save_checkpoint(path, big_checkpoint(1.0f));
  for (int attempt = 0; attempt < 5; ++attempt) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (int i = 0;; ++i) save_checkpoint(path, big_checkpoint(static_cast<float>(2 + i % 7)));
    }
    ::usleep(static_cast<useconds_t>(20'000 + 37'000 * attempt));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    const Checkpoint c = load_checkpoint(path);  // throws if torn
    const float fill = c.parameters.at("w").data<float>()[0];
    EXPECT_EQ(c.parameters.at("w").data<float>()[(4 << 20) - 1], fill);
    EXPECT_EQ(c.state.at("fill").get<float>(), fill);
  }
  fs::remove_all(dir);
}

TEST(Checkpoints, CorruptedOrTruncatedFilesAreRefused) {
  const auto dir = temp_dir("corrupt");
  const fs::path path = dir / "c.ckpt";
  Checkpoint c;
  c.parameters["w"] = Tensor::from<float>({3}, {1, 2, 3});
  save_checkpoint(path, c);
  EXPECT_EQ(load_checkpoint(path).parameters.at("w"), c.parameters.at("w"));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-12, std::ios::end);
    f.put('\x7f');
  }
  EXPECT_ERROR(load_checkpoint(path), "c.ckpt", "corrupted");
  fs::resize_file(path, 10);
  EXPECT_ERROR(load_checkpoint(path), "c.ckpt", "not an onnxforge checkpoint");
  EXPECT_ERROR(load_checkpoint(dir / "missing.ckpt"), "missing.ckpt", "not found");
  fs::remove_all(dir);
}

// A checkpoint file as save_checkpoint lays it out, from a header and tensor bytes of our choice,
// with a valid checksum: what a hand-made (not merely corrupted) file can claim.
void write_raw_checkpoint(const fs::path& path, const nlohmann::json& header,
                          const std::string& blob) {
  const std::string json = header.dump();
  std::string file = "OFCKPT01";
  auto put_u64 = [&](std::uint64_t v) { file.append(reinterpret_cast<const char*>(&v), 8); };
  put_u64(json.size());
  file += json + blob;
  put_u64(checkpoint_checksum(file));
  std::ofstream(path, std::ios::binary) << file;
}

TEST(Checkpoints, HeaderClaimingAHugeOrNegativeTensorIsRefusedBeforeAllocating) {
  const auto dir = temp_dir("huge");
  const fs::path path = dir / "h.ckpt";
  auto header = [](const nlohmann::json& shape, std::uint64_t bytes, const char* dtype) {
    return nlohmann::json{{"format", "onnxforge checkpoint"},
                          {"version", 1},
                          {"state", nlohmann::json::object()},
                          {"tensors",
                           {{{"group", "parameters"},
                             {"name", "w"},
                             {"dtype", dtype},
                             {"shape", shape},
                             {"offset", 0},
                             {"bytes", bytes}}}}};
  };
  write_raw_checkpoint(path, header({3}, 12, "f32"), std::string(12, '\0'));
  EXPECT_EQ(load_checkpoint(path).parameters.at("w").shape(), (Shape{3}));
  // 4 TiB declared over 12 bytes: refused from the header, without allocating the 4 TiB.
  write_raw_checkpoint(path, header({std::int64_t{1} << 40}, 12, "f32"), std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "inconsistent size");
  write_raw_checkpoint(path, header({std::int64_t{1} << 62, 8}, 0, "f32"), "");
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "invalid shape");
  write_raw_checkpoint(path, header({-1, 3}, 12, "f32"), std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "each dimension", "not -1");
  // Floats where whole numbers belong: refused before any conversion (a float cast to an integer
  // out of its range is undefined behaviour; the checkpoint fuzz target found 6.7e33).
  write_raw_checkpoint(path, header({1.5, 8}, 12, "f32"), std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "each dimension", "not 1.5");
  write_raw_checkpoint(path, header({3}, 12, "f32"), std::string(12, '\0'));
  auto with_offset = header({3}, 12, "f32");
  with_offset["tensors"][0]["offset"] = 6.7e33;
  write_raw_checkpoint(path, with_offset, std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "offset must be a whole number");
  with_offset["tensors"][0]["offset"] = "0";
  write_raw_checkpoint(path, with_offset, std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "offset", "not a string");
  write_raw_checkpoint(path, header({3}, 12, "complex"), std::string(12, '\0'));
  EXPECT_ERROR(load_checkpoint(path), "h.ckpt", "'w'", "complex");
  fs::remove_all(dir);
}

// ---- configs ------------------------------------------------------------------------------------

// The smallest valid config, the base of those below: the two data folders.
const std::string kBase = "[data]\ntrain = \"t\"\nval = \"v\"\n";

// A config (TOML text, read as x.toml, with --set overrides) and the words of its one-line error.
struct RefusedConfig {
  std::string text;
  std::vector<const char*> fragments;
  std::vector<std::string> overrides = {};
};

void expect_refused(const std::vector<RefusedConfig>& configs) {
  for (const auto& config : configs) {
    SCOPED_TRACE(config.text);
    EXPECT_ERROR(parse_config(config.text, "x.toml", config.overrides), config.fragments);
  }
}

TEST(Configs, IntegersOutOfRangeAndEmptySizesAreRefused) {
  expect_refused({
      // 2^32 + 1 would wrap to 1 epoch in an int.
      {kBase + "[train]\nepochs = 4294967297\n", {"'train.epochs'", "too large"}},
      {kBase + "[model]\ninput = [3, 0, 8]\n", {"'model.input'", "positive"}},
      {kBase + "[transfer]\nhead_units = [-4]\n", {"'transfer.head_units'", "positive"}},
  });
  EXPECT_EQ(parse_config(kBase + "[train]\nseed = 9223372036854775807\n", "x.toml").train.seed,
            9223372036854775807ull);
}

TEST(Configs, ErrorsAreOneLineNamingTheKeyOrPath) {
  expect_refused({
      {kBase + "[train]\nepochz = 3\n", {"x.toml", "unknown key 'train.epochz'"}},
      {kBase + "[train]\nepochs = \"ten\"\n", {"'train.epochs'", "an integer"}},
      {kBase + "[optimizer]\nname = \"adagrad\"\n", {"'optimizer.name'", "adagrad"}},
      {kBase + "[train]\ndtype = \"fp16\"\n", {"'train.dtype'", "fp16"}},
      {"[data]\nval = \"v\"\n", {"'data.train' is required"}},
      {kBase + "[train\n", {"x.toml:4"}},
      {kBase, {"'train.batch_size'"}, {"train.batch_size=big"}},
      {kBase, {"--set 'nonsense'"}, {"nonsense"}},
  });
  EXPECT_EQ(parse_config(kBase, "x.toml").train.dtype, "auto");
  EXPECT_EQ(parse_config(kBase + "[train]\ndtype = \"fp32\"\n", "x.toml").train.dtype, "fp32");
  EXPECT_ERROR(load_config("/nonexistent/config.toml"), "/nonexistent/config.toml", "not found");

  const TrainConfig c = parse_config(
      kBase, "x.toml",
      {"train.epochs=3", "optimizer.lr=0.5", "train.backend=reference", "augment.flip=0.5"});
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_EQ(c.optimizer.learning_rate, 0.5);
  EXPECT_EQ(c.train.backend, "reference");
  EXPECT_EQ(c.augment.flip_probability, 0.5);

  TrainConfig missing = c;
  missing.data.train = "/nonexistent/train";
  EXPECT_ERROR(load_data(missing, {}), "/nonexistent/train");
}

TEST(Configs, ShippedConfigsParse) {
  // The three that `onnxforge run` reads must be there; every other shipped config parses too.
  const fs::path dir = fs::path(ONNXFORGE_SOURCE_DIR) / "configs";
  for (const char* name : {"baseline.toml", "improved.toml", "transfer.toml"}) {
    EXPECT_TRUE(fs::is_regular_file(dir / name)) << name << " is missing from " << dir;
  }
  int parsed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    EXPECT_NO_THROW(load_config(entry.path())) << entry.path();
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
}

TEST(Schedules, StepCosineAndConstant) {
  TrainConfig c = tiny_config(10);
  c.optimizer.learning_rate = 1.0;
  EXPECT_EQ(scheduled_lr(c, 7), 1.0);
  c.schedule.name = "step";
  c.schedule.step_size = 3;
  c.schedule.gamma = 0.5;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 2), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 3), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 7), 0.25);
  c.schedule.name = "cosine";
  c.schedule.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(scheduled_lr(c, 0), 1.0);
  EXPECT_NEAR(scheduled_lr(c, 5), 0.55, 1e-12);
}

}  // namespace
}  // namespace onnxforge::train
