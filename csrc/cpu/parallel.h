// A small persistent thread pool for the CPU kernels. Work is split into tasks whose boundaries depend
// only on the problem size, never on the thread count, so every result (masks, values, reductions written
// per task and combined in task order) is bit-identical for any number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace rdf {

int get_num_threads();          // threads a parallel call may use (>= 1)
// n >= 1, capped at max_num_threads(); takes effect on the next call. The pool follows it both ways:
// lowering it joins the surplus workers (at once when no call is running, else on the next call).
void set_num_threads(int n);
int default_num_threads();      // the CPUs this process may run on (sched affinity)
int max_num_threads();          // the cap of set_num_threads: max(4 x default_num_threads(), 256)

// How long (ns) an idle worker polls for the next call before it sleeps, and a caller for its helpers to
// finish (parallel.cpp says why); 0: sleep at once. REGDROP_POOL_SPIN_US sets it at load; the setter is
// private, for benchmarks that switch it in one process. A poll under way keeps the window it started with.
constexpr int64_t kDefaultSpinNs = 200000;
int64_t pool_spin_ns();
void set_pool_spin_ns(int64_t ns);  // clamped to [0, 1 s]

// Runs task(t) for t in [0, n_tasks) on up to get_num_threads() threads, the caller included; returns when
// all are done. Callable from several Python threads at once: a call that finds the pool busy runs its
// tasks on the calling thread alone (same results, no deadlock, no oversubscription). When the system
// refuses to start a thread, the pool keeps the workers it has (until the next set_num_threads). Safe
// across fork(): the child starts with an empty pool and unlocked state.
void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& task);

// A call of more than kCheckpointTasks tasks runs in chunks of that many tasks (the same tasks, so the same
// results), and between chunks calls the calling thread's checkpoint, if a ScopedCheckpoint set one; the
// checkpoint stops the call by throwing (tasks already run have written their outputs).
constexpr int64_t kCheckpointTasks = 256;
class ScopedCheckpoint {
 public:
  explicit ScopedCheckpoint(void (*checkpoint)());
  ~ScopedCheckpoint();
  ScopedCheckpoint(const ScopedCheckpoint&) = delete;
  ScopedCheckpoint& operator=(const ScopedCheckpoint&) = delete;

 private:
  void (*previous_)();
};

}  // namespace rdf
