// The data pipeline's two hand-offs to oneTBB worker threads -- a parallel loop and a
// fire-and-forget task -- written so that ThreadSanitizer can check what runs inside them.
//
// Debian's libtbb is not built with TSan, so the synchronisation TBB performs when it passes a
// task from the thread that spawns it to the worker that runs it (and back, when the loop joins)
// is invisible to TSan. Without help it reports every read a task makes of anything written
// before the spawn. These wrappers state those edges explicitly, the same ones TBB guarantees:
//   spawn  -> every body starts      (the caller's writes are visible in each body)
//   every body ends -> the call returns (the bodies' writes are visible to the caller)
// and nothing else: two bodies of one loop stay unordered, so a race between them is reported.
// The task object TBB copies holds one pointer, read and written through std::atomic_ref, so its
// copies are not races either. In builds without TSan the annotations compile to nothing.
#pragma once

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <utility>

#if defined(__SANITIZE_THREAD__)
#define ONNXFORGE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ONNXFORGE_TSAN 1
#endif
#endif
#ifdef ONNXFORGE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace onnxforge::data::detail {

// Everything this thread wrote so far happens before whatever follows happens_after(token).
inline void happens_before([[maybe_unused]] const void* token) {
#ifdef ONNXFORGE_TSAN
  __tsan_release(const_cast<void*>(token));
#endif
}
inline void happens_after([[maybe_unused]] const void* token) {
#ifdef ONNXFORGE_TSAN
  __tsan_acquire(const_cast<void*>(token));
#endif
}

// One pointer that TBB may copy between threads without a data race.
template <class T>
class SharedPointer {
 public:
  explicit SharedPointer(T* p) { std::atomic_ref<T*>(p_).store(p, std::memory_order_relaxed); }
  SharedPointer(const SharedPointer& other) {
    std::atomic_ref<T*>(p_).store(other.get(), std::memory_order_relaxed);
  }
  SharedPointer& operator=(const SharedPointer&) = delete;
  T* get() const {
    return std::atomic_ref<T*>(const_cast<T*&>(p_)).load(std::memory_order_relaxed);
  }

 private:
  alignas(std::atomic_ref<T*>::required_alignment) T* p_;
};

// body(begin, end) over [0, n) in chunks of at least `grain` indices, in the current arena.
template <class Body>
void parallel_for(std::size_t n, std::size_t grain, const Body& body) {
  struct Call {
    const Body* body;
    char spawned;
    char joined;
  } call{&body, 0, 0};
  struct Task {
    SharedPointer<Call> call;
    void operator()(const tbb::blocked_range<std::size_t>& range) const {
      Call* c = call.get();
      happens_after(&c->spawned);
      (*c->body)(range.begin(), range.end());
      happens_before(&c->joined);
    }
  };
  happens_before(&call.spawned);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, grain), Task{SharedPointer<Call>(&call)});
  happens_after(&call.joined);
}

// Runs job() on one of `arena`'s workers and returns at once. job must not throw; it reports
// its own outcome (a std::promise, say), which is also how the caller synchronises with it.
template <class Job>
void enqueue(tbb::task_arena& arena, Job job) {
  auto owned = std::make_unique<Job>(std::move(job));
  happens_before(owned.get());
  struct Task {
    SharedPointer<Job> job;
    void operator()() const {
      std::unique_ptr<Job> mine(job.get());
      happens_after(mine.get());
      (*mine)();
    }
  };
  arena.enqueue(Task{SharedPointer<Job>(owned.get())});
  owned.release();  // the task owns it now
}

}  // namespace onnxforge::data::detail
