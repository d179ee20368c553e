// Shows that the TSan stage of scripts/test.sh --sanitize can see races inside oneTBB tasks,
// under the same suppressions (tests/sanitizers/tsan.supp) the data tests run with.
//   tsan_canary clean  the data pipeline's shapes done right: must finish without a report
//   tsan_canary loop   two bodies of one detail::parallel_for write one int: must be reported
//   tsan_canary task   the caller and an enqueued task write one int: must be reported
// Built only with -DONNXFORGE_SANITIZE=thread.
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "data/parallel.hpp"

namespace {

using onnxforge::data::detail::enqueue;
using onnxforge::data::detail::parallel_for;

// Runs `step(i)` for i in [0, 256) until at least two threads have run a body.
template <class Step>
void on_two_threads(tbb::task_arena& arena, Step step) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::vector<std::thread::id> who(256);
    arena.execute([&] {
      parallel_for(who.size(), 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i != end; ++i) {
          who[i] = std::this_thread::get_id();
          step(i);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      });
    });
    if (std::set<std::thread::id>(who.begin(), who.end()).size() >= 2) return;
  }
  std::fprintf(stderr, "tsan_canary: the loop never ran on two threads\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc > 1 ? argv[1] : "";
  tbb::global_control control(tbb::global_control::max_allowed_parallelism, 3);
  tbb::task_arena arena(2, 1);
  if (mode == "clean") {
    // Written before the loop, read in it; each body writes its own slots; read after the join.
    std::vector<int> input(256, 3);
    std::vector<int> output(256, 0);
    on_two_threads(arena, [&](std::size_t i) { output[i] = input[i] * 2; });
    long sum = 0;
    for (int v : output) sum += v;
    // A background task fills a buffer the caller reads after the future, as BatchStream does.
    std::vector<int> buffer(1000, 0);
    auto promise = std::make_shared<std::promise<void>>();
    auto done = promise->get_future();
    enqueue(arena, [&buffer, promise] {
      for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<int>(i);
      promise->set_value();
    });
    done.get();
    for (int v : buffer) sum += v;
    std::printf("tsan_canary clean: %ld\n", sum);
    return sum == 256 * 6 + 999 * 1000 / 2 ? 0 : 1;
  }
  if (mode == "loop") {
    int shared = 0;
    on_two_threads(arena, [&](std::size_t) { shared += 1; });
    std::printf("tsan_canary loop: %d (no race reported)\n", shared);
    return 0;
  }
  if (mode == "task") {
    int shared = 0;
    auto promise = std::make_shared<std::promise<void>>();
    auto done = promise->get_future();
    enqueue(arena, [&shared, promise] {
      shared = 1;
      promise->set_value();
    });
    shared = 2;
    done.get();
    std::printf("tsan_canary task: %d (no race reported)\n", shared);
    return 0;
  }
  std::fprintf(stderr, "usage: tsan_canary clean|loop|task\n");
  return 2;
}
