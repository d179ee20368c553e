#include "trainers/config.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/error.hpp"
#include "core/files.hpp"
#include "data/transform.hpp"
#include "eval/metrics.hpp"

namespace onnxforge::train {

namespace {

// Reads typed keys out of one table, remembering which were read so that the rest can be
// reported as unknown.
class Reader {
 public:
  Reader(const toml::table& root, std::string where) : root_(root), where_(std::move(where)) {}

  template <typename T>
  void get(const std::string& key, T& out) {
    known_.insert(key);
    const toml::node* node = root_.at_path(key).node();
    if (!node) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node->value_exact<bool>()) return void(out = *v);
      wrong(key, "true or false");
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node->value_exact<std::string>()) return void(out = *v);
      wrong(key, "a string");
    } else if constexpr (std::is_floating_point_v<T>) {
      if (auto v = node->value<double>()) return void(out = *v);
      wrong(key, "a number");
    } else if constexpr (std::is_integral_v<T>) {
      if (auto v = node->value_exact<std::int64_t>()) {
        if (*v < 0) fail("{}: '{}' must not be negative, got {}", where_, key, *v);
        if (static_cast<std::uint64_t>(*v) > std::numeric_limits<T>::max()) {
          fail("{}: '{}' is too large ({}; at most {})", where_, key, *v,
               std::numeric_limits<T>::max());
        }
        return void(out = static_cast<T>(*v));
      }
      wrong(key, "an integer");
    } else {
      const auto* array = node->as_array();
      if (!array) wrong(key, "an array");
      out.clear();
      for (const auto& item : *array) {
        using Item = typename T::value_type;
        if constexpr (std::is_same_v<Item, std::string>) {
          auto v = item.value_exact<std::string>();
          if (!v) wrong(key, "an array of strings");
          out.push_back(*v);
        } else if constexpr (std::is_floating_point_v<Item>) {
          auto v = item.value<double>();
          if (!v) wrong(key, "an array of numbers");
          out.push_back(*v);
        } else {
          auto v = item.value_exact<std::int64_t>();
          if (!v) wrong(key, "an array of integers");
          out.push_back(static_cast<Item>(*v));
        }
      }
    }
  }

  // Every key of the file must have been read.
  void reject_unknown() const {
    for (const auto& [section, node] : root_) {
      const std::string s(section.str());
      if (const auto* table = node.as_table()) {
        for (const auto& [key, value] : *table) {
          const std::string full = s + "." + std::string(key.str());
          if (!known_.count(full)) unknown(full);
        }
      } else if (!known_.count(s)) {
        unknown(s);
      }
    }
  }

 private:
  [[noreturn]] void wrong(const std::string& key, const char* expected) const {
    fail("{}: '{}' must be {}", where_, key, expected);
  }
  [[noreturn]] void unknown(const std::string& key) const {
    fail("{}: unknown key '{}' (configs/README.md lists every key)", where_, key);
  }

  const toml::table& root_;
  std::string where_;
  std::set<std::string> known_;
};

void apply_override(toml::table& root, const std::string& assignment, const std::string& where) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    fail("{}: --set '{}' must look like section.key=value", where, assignment);
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  const auto dot = key.find('.');
  if (dot == std::string::npos) {
    if (key != "name") fail("{}: --set '{}': the key must be section.key", where, key);
  }
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    parsed = toml::table{};
    parsed.insert("v", text);  // a bare word: a string
  }
  toml::node& value = *parsed.get("v");
  if (dot == std::string::npos) {
    root.insert_or_assign(key, value);
    return;
  }
  const std::string section = key.substr(0, dot);
  const std::string leaf = key.substr(dot + 1);
  if (!root.contains(section)) root.insert(section, toml::table{});
  auto* table = root.get(section)->as_table();
  if (!table) fail("{}: --set '{}': '{}' is not a section", where, key, section);
  table->insert_or_assign(leaf, value);
}

// optimizer.name and the optimizer it names.
constexpr std::pair<std::string_view, OptimizerSpec::Kind> kOptimizers[] = {
    {"sgd", OptimizerSpec::Kind::sgd},
    {"adam", OptimizerSpec::Kind::adam},
    {"adamw", OptimizerSpec::Kind::adamw}};

void check(bool ok, const std::string& where, const std::string& message) {
  if (!ok) fail("{}: {}", where, message);
}

}  // namespace

std::string optimizer_name(OptimizerSpec::Kind kind) {
  for (const auto& [name, k] : kOptimizers) {
    if (k == kind) return std::string(name);
  }
  fail("optimizer kind {} has no name", static_cast<int>(kind));
}

bool higher_is_better(const std::string& metric) {
  return metric.find("loss") == std::string::npos;
}

TrainConfig parse_config(const std::string& text, const std::string& where,
                         const std::vector<std::string>& overrides) {
  toml::table root;
  try {
    root = toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    fail("{}:{}:{}: {}", where, e.source().begin.line, e.source().begin.column, e.description());
  }
  for (const auto& o : overrides) apply_override(root, o, where);

  TrainConfig c;
  Reader r(root, where);
  r.get("name", c.name);
  r.get("model.name", c.model.name);
  r.get("model.input", c.model.input);
  r.get("data.train", c.data.train);
  r.get("data.val", c.data.val);
  r.get("data.validation_split", c.data.validation_split);
  r.get("data.test", c.data.test);
  r.get("data.label_map", c.data.label_map);
  r.get("data.classes", c.data.classes);
  r.get("data.preprocess", c.data.preprocess);
  r.get("data.loader_threads", c.data.loader_threads);
  r.get("augment.flip", c.augment.flip_probability);
  r.get("augment.rotation", c.augment.rotation_degrees);
  r.get("augment.shift", c.augment.shift_fraction);
  r.get("augment.zoom", c.augment.zoom);
  r.get("augment.brightness", c.augment.brightness);
  r.get("augment.contrast", c.augment.contrast);
  r.get("train.epochs", c.train.epochs);
  r.get("train.batch_size", c.train.batch_size);
  r.get("train.seed", c.train.seed);
  r.get("train.backend", c.train.backend);
  r.get("train.threads", c.train.threads);
  r.get("train.dtype", c.train.dtype);
  r.get("train.clip_norm", c.train.clip_norm);
  r.get("train.class_weights", c.train.class_weights);
  r.get("train.threshold", c.train.threshold);
  r.get("train.positive_class", c.train.positive_class);
  std::string optimizer = optimizer_name(c.optimizer.kind);
  r.get("optimizer.name", optimizer);
  r.get("optimizer.lr", c.optimizer.learning_rate);
  r.get("optimizer.momentum", c.optimizer.momentum);
  r.get("optimizer.nesterov", c.optimizer.nesterov);
  r.get("optimizer.beta1", c.optimizer.beta1);
  r.get("optimizer.beta2", c.optimizer.beta2);
  r.get("optimizer.epsilon", c.optimizer.epsilon);
  r.get("optimizer.weight_decay", c.optimizer.weight_decay);
  r.get("schedule.name", c.schedule.name);
  r.get("schedule.step_size", c.schedule.step_size);
  r.get("schedule.gamma", c.schedule.gamma);
  r.get("schedule.min_lr", c.schedule.min_lr);
  r.get("schedule.patience", c.schedule.patience);
  r.get("schedule.factor", c.schedule.factor);
  r.get("schedule.monitor", c.schedule.monitor);
  r.get("early_stopping.patience", c.early_stopping.patience);
  r.get("early_stopping.min_delta", c.early_stopping.min_delta);
  r.get("early_stopping.restore_best", c.early_stopping.restore_best);
  r.get("early_stopping.monitor", c.early_stopping.monitor);
  r.get("checkpoint.monitor", c.checkpoint.monitor);
  r.get("transfer.backbone", c.transfer.backbone);
  r.get("transfer.cut_at", c.transfer.cut_at);
  r.get("transfer.head_units", c.transfer.head_units);
  r.get("transfer.head_activation", c.transfer.head_activation);
  r.get("transfer.head_dropout", c.transfer.head_dropout);
  r.get("transfer.head_batch_norm", c.transfer.head_batch_norm);
  r.get("transfer.cache_features", c.transfer.cache_features);
  r.get("transfer.cache_memory_mb", c.transfer.cache_memory_mb);
  r.get("transfer.fine_tune_epochs", c.transfer.fine_tune_epochs);
  r.get("transfer.fine_tune_lr", c.transfer.fine_tune_lr);
  r.get("transfer.unfreeze", c.transfer.unfreeze);
  r.get("transfer.unfreeze_last", c.transfer.unfreeze_last);
  r.get("report.threshold", c.report.threshold);
  r.get("report.groups", c.report.groups);
  r.get("report.explain", c.report.explain);
  r.reject_unknown();

  check(!c.data.train.empty(), where, "'data.train' is required (an image folder)");
  check(c.model.input.size() == 3, where, "'model.input' must be [channels, height, width]");
  for (const auto d : c.model.input) check(d >= 1, where, "'model.input' sizes must be positive");
  for (const auto u : c.transfer.head_units) {
    check(u >= 1, where, "'transfer.head_units' must be positive");
  }
  check(c.data.validation_split >= 0.0 && c.data.validation_split < 1.0, where,
        "'data.validation_split' must be in [0, 1)");
  check(!c.data.val.empty() || c.data.validation_split > 0.0, where,
        "give 'data.val' (a folder) or 'data.validation_split' (a fraction of data.train)");
  check(c.train.epochs >= 1, where, "'train.epochs' must be at least 1");
  check(c.train.batch_size >= 1, where, "'train.batch_size' must be at least 1");
  check(c.train.class_weights.empty() || c.train.class_weights.size() == 2, where,
        "'train.class_weights' must be [negative, positive]");
  check(c.train.threshold > 0.0 && c.train.threshold < 1.0, where,
        "'train.threshold' must be in (0, 1)");
  const std::set<std::string> dtypes{"fp32", "bf16", "auto"};
  check(dtypes.count(c.train.dtype) != 0, where,
        "'train.dtype' must be fp32, bf16 or auto, got '" + c.train.dtype + "'");
  const auto kind = std::find_if(std::begin(kOptimizers), std::end(kOptimizers),
                                 [&](const auto& o) { return o.first == optimizer; });
  check(kind != std::end(kOptimizers), where,
        "'optimizer.name' must be sgd, adam or adamw, got '" + optimizer + "'");
  c.optimizer.kind = kind->second;
  check(c.optimizer.learning_rate > 0.0, where, "'optimizer.lr' must be positive");
  const std::set<std::string> schedules{"constant", "step", "cosine", "plateau"};
  check(schedules.count(c.schedule.name) != 0, where,
        "'schedule.name' must be constant, step, cosine or plateau, got '" + c.schedule.name + "'");
  const std::set<std::string> monitors{"val_loss", "val_accuracy", "val_auc", "loss", "accuracy"};
  for (const auto* m : {&c.schedule.monitor, &c.early_stopping.monitor, &c.checkpoint.monitor}) {
    check(monitors.count(*m) != 0, where,
          "monitors must be val_loss, val_accuracy, val_auc, loss or accuracy, got '" + *m + "'");
  }
  if (c.data.preprocess == "auto") {
    check(!c.transfer.backbone.empty() || !c.transfer.cut_at.empty(), where,
          "'data.preprocess' = \"auto\" takes the backbone's own (its metadata): it needs "
          "'transfer.backbone'");
  } else {
    try {
      data::Preprocess::parse(c.data.preprocess);
    } catch (const Error& e) {
      check(false, where, std::string("'data.preprocess': ") + e.what());
    }
  }
  const std::set<std::string> activations{"relu", "tanh", "sigmoid", "leaky_relu"};
  check(activations.count(c.transfer.head_activation) != 0, where,
        "'transfer.head_activation' must be relu, tanh, sigmoid or leaky_relu, got '" +
            c.transfer.head_activation + "'");
  check(c.transfer.head_dropout >= 0.0 && c.transfer.head_dropout < 1.0, where,
        "'transfer.head_dropout' must be in [0, 1)");
  check(c.transfer.backbone.empty() || !c.transfer.cut_at.empty(), where,
        "'transfer.cut_at' is required with 'transfer.backbone' (e.g. block5_pool)");
  check(c.transfer.fine_tune_epochs == 0 || !c.transfer.unfreeze.empty() ||
            c.transfer.unfreeze_last > 0,
        where,
        "'transfer.unfreeze' (a parameter-name prefix such as block5) or "
        "'transfer.unfreeze_last' (the last N convolutions) is required with "
        "'transfer.fine_tune_epochs'");
  check(c.transfer.unfreeze_last >= 0 &&
            (c.transfer.unfreeze_last == 0 || c.transfer.unfreeze.empty()),
        where, "'transfer.unfreeze_last' must be >= 0, and not given with 'transfer.unfreeze'");
  try {
    eval::parse_threshold_rule(c.report.threshold, "'report.threshold'");
  } catch (const Error& e) {
    check(false, where, e.what());
  }
  return c;
}

TrainConfig load_config(const std::filesystem::path& path,
                        const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    fail("{}: config file not found", path.string());
  }
  const auto text = try_read_file(path);
  if (!text) fail("{}: cannot read the config file", path.string());
  TrainConfig c = parse_config(*text, path.string(), overrides);
  if (c.name.empty()) c.name = path.stem().string();
  return c;
}

std::string to_toml(const TrainConfig& c) {
  auto doubles = [](const std::vector<double>& v) {
    toml::array a;
    for (double d : v) a.push_back(d);
    return a;
  };
  auto ints = [](const std::vector<std::int64_t>& v) {
    toml::array a;
    for (auto d : v) a.push_back(d);
    return a;
  };
  auto strings = [](const std::vector<std::string>& v) {
    toml::array a;
    for (const auto& s : v) a.push_back(s);
    return a;
  };
  toml::table root{
      {"name", c.name},
      {"model", toml::table{{"name", c.model.name}, {"input", ints(c.model.input)}}},
      {"data", toml::table{{"train", c.data.train},
                           {"val", c.data.val},
                           {"validation_split", c.data.validation_split},
                           {"test", c.data.test},
                           {"label_map", c.data.label_map},
                           {"classes", strings(c.data.classes)},
                           {"preprocess", c.data.preprocess},
                           {"loader_threads", c.data.loader_threads}}},
      {"augment", toml::table{{"flip", c.augment.flip_probability},
                              {"rotation", c.augment.rotation_degrees},
                              {"shift", c.augment.shift_fraction},
                              {"zoom", c.augment.zoom},
                              {"brightness", c.augment.brightness},
                              {"contrast", c.augment.contrast}}},
      {"train", toml::table{{"epochs", c.train.epochs},
                            {"batch_size", c.train.batch_size},
                            {"seed", static_cast<std::int64_t>(c.train.seed)},
                            {"backend", c.train.backend},
                            {"threads", c.train.threads},
                            {"dtype", c.train.dtype},
                            {"clip_norm", c.train.clip_norm},
                            {"class_weights", doubles(c.train.class_weights)},
                            {"threshold", c.train.threshold},
                            {"positive_class", c.train.positive_class}}},
      {"optimizer", toml::table{{"name", optimizer_name(c.optimizer.kind)},
                                {"lr", c.optimizer.learning_rate},
                                {"momentum", c.optimizer.momentum},
                                {"nesterov", c.optimizer.nesterov},
                                {"beta1", c.optimizer.beta1},
                                {"beta2", c.optimizer.beta2},
                                {"epsilon", c.optimizer.epsilon},
                                {"weight_decay", c.optimizer.weight_decay}}},
      {"schedule", toml::table{{"name", c.schedule.name},
                               {"step_size", c.schedule.step_size},
                               {"gamma", c.schedule.gamma},
                               {"min_lr", c.schedule.min_lr},
                               {"patience", c.schedule.patience},
                               {"factor", c.schedule.factor},
                               {"monitor", c.schedule.monitor}}},
      {"early_stopping", toml::table{{"patience", c.early_stopping.patience},
                                     {"min_delta", c.early_stopping.min_delta},
                                     {"restore_best", c.early_stopping.restore_best},
                                     {"monitor", c.early_stopping.monitor}}},
      {"checkpoint", toml::table{{"monitor", c.checkpoint.monitor}}},
      {"transfer", toml::table{{"backbone", c.transfer.backbone},
                               {"cut_at", c.transfer.cut_at},
                               {"head_units", ints(c.transfer.head_units)},
                               {"head_activation", c.transfer.head_activation},
                               {"head_dropout", c.transfer.head_dropout},
                               {"head_batch_norm", c.transfer.head_batch_norm},
                               {"cache_features", c.transfer.cache_features},
                               {"cache_memory_mb", c.transfer.cache_memory_mb},
                               {"fine_tune_epochs", c.transfer.fine_tune_epochs},
                               {"fine_tune_lr", c.transfer.fine_tune_lr},
                               {"unfreeze", c.transfer.unfreeze},
                               {"unfreeze_last", c.transfer.unfreeze_last}}},
      {"report", toml::table{{"threshold", c.report.threshold},
                             {"groups", c.report.groups},
                             {"explain", c.report.explain}}},
  };
  std::ostringstream out;
  out << "# Resolved onnxforge training config (every key, defaults included).\n" << root << "\n";
  return out.str();
}

}  // namespace onnxforge::train
