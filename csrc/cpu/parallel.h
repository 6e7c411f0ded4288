// A small persistent thread pool for the CPU kernels. Work is split into tasks whose boundaries depend
// only on the problem size, never on the thread count, so every result (masks, values, reductions written
// per task and combined in task order) is bit-identical for any number of threads.
#pragma once
#include <cstdint>
#include <functional>

namespace rdf {

int get_num_threads();          // threads a parallel call may use (>= 1)
void set_num_threads(int n);    // n >= 1; takes effect on the next call
int default_num_threads();      // the CPUs this process may run on (sched affinity)

// Runs task(t) for t in [0, n_tasks) on up to get_num_threads() threads, the caller included; returns when
// all are done. Callable from several Python threads at once: a call that finds the pool busy runs its
// tasks on the calling thread alone (same results, no deadlock, no oversubscription).
void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& task);

}  // namespace rdf
