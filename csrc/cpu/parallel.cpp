#include "parallel.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace rdf {
namespace {

// Workers sleep on a condition variable between calls: an idle pool costs no CPU, so a process that also
// runs torch or BLAS thread pools is not oversubscribed while those run. Only the call that holds the busy
// lock (below) runs or resizes the pool.
class Pool {
 public:
  ~Pool() { resize(0); }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Starts or joins workers until there are n; returns false when the system refused to start one (the
  // pool then keeps the workers it has).
  bool resize(int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_ = n;
    }
    if (n < workers()) {
      wake_.notify_all();  // workers with index >= live_ exit
      for (size_t i = static_cast<size_t>(n); i < threads_.size(); ++i) threads_[i].join();
      threads_.resize(static_cast<size_t>(n));
      return true;
    }
    bool all = true;
    try {
      threads_.reserve(static_cast<size_t>(n));
      while (workers() < n) {
        const int index = workers();
        threads_.emplace_back([this, index] { worker_loop(index); });
      }
    } catch (const std::exception&) {  // std::system_error from std::thread, or bad_alloc
      all = false;
      std::lock_guard<std::mutex> lock(mu_);
      live_ = workers();
    }
    return all;
  }

  // Runs the job with up to `helpers` workers plus the caller.
  void run(int64_t n_tasks, int helpers, const std::function<void(int64_t)>& task) {
    helpers = std::min(helpers, workers());
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = &task;
      n_tasks_ = n_tasks;
      next_.store(0);
      helpers_wanted_ = helpers;
      helpers_active_ = 0;
      error_ = nullptr;
      ++generation_;
    }
    // Wake only as many workers as can take part: a missed wake-up costs speed, never a result, since the
    // caller runs whatever tasks are left.
    if (helpers >= workers()) {
      wake_.notify_all();
    } else {
      for (int i = 0; i < helpers; ++i) wake_.notify_one();
    }
    drain();
    std::unique_lock<std::mutex> lock(mu_);
    // Workers that never joined this generation must not join it late: close it before waiting.
    helpers_wanted_ = 0;
    done_.wait(lock, [this] { return helpers_active_ == 0; });
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void drain() {
    for (;;) {
      const int64_t t = next_.fetch_add(1);
      if (t >= n_tasks_) return;
      try {
        (*task_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker_loop(int index) {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t seen = generation_;  // a worker started now joins the next call, not one that ran before
    for (;;) {
      wake_.wait(lock, [&] { return index >= live_ || (generation_ != seen && helpers_wanted_ > 0); });
      if (index >= live_) return;
      seen = generation_;
      --helpers_wanted_;
      ++helpers_active_;
      lock.unlock();
      drain();
      lock.lock();
      if (--helpers_active_ == 0) done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;  // worker i is threads_[i]
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  int live_ = 0;  // workers with a smaller index keep running
  int helpers_wanted_ = 0;
  int helpers_active_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
};

std::mutex g_config_mu;  // guards g_num_threads
int g_num_threads = 0;   // 0: not yet set, use default_num_threads()
// Held by the one call that owns the pool; g_pool and g_threads_refused are touched only under it. A
// pointer so that a forked child can start with a fresh, unlocked one (the parent's thread that held it
// does not exist there).
std::mutex* g_busy = new std::mutex;
Pool* g_pool = nullptr;
bool g_threads_refused = false;  // the pool could not grow; retried after the next set_num_threads
std::atomic<bool> g_retry_threads{false};

thread_local void (*t_checkpoint)() = nullptr;

// Fork: the child has only the forking thread. The config lock is taken around fork() so the child never
// inherits it held; the busy lock (held for a whole call) and the pool (whose threads are gone, so it is
// leaked, not destroyed) are replaced in the child, which starts a pool of its own on its first call.
void before_fork() { g_config_mu.lock(); }
void after_fork_parent() { g_config_mu.unlock(); }
void after_fork_child() {
  g_config_mu.unlock();
  g_busy = new std::mutex;
  g_pool = nullptr;
  g_threads_refused = false;
}
[[maybe_unused]] const int g_atfork_registered = pthread_atfork(before_fork, after_fork_parent, after_fork_child);

// Sizes the pool for a call of `threads` threads when the setting is `allowed` threads: grows it to
// threads - 1 workers if needed (unless the system refused threads before), joins those beyond
// allowed - 1. The caller holds the busy lock.
Pool* pool_for(int threads, int allowed) {
  if (!g_pool) g_pool = new Pool;
  if (g_retry_threads.exchange(false)) g_threads_refused = false;
  if (g_pool->workers() < threads - 1 && !g_threads_refused) g_threads_refused = !g_pool->resize(threads - 1);
  if (g_pool->workers() > allowed - 1) g_pool->resize(allowed - 1);
  return g_pool;
}

void run_all(int64_t n_tasks, const std::function<void(int64_t)>& task) {
  const int allowed = get_num_threads();
  const int threads = static_cast<int>(std::min<int64_t>(allowed, n_tasks));
  std::unique_lock<std::mutex> busy(*g_busy, std::try_to_lock);
  if (threads <= 1 || !busy.owns_lock()) {
    for (int64_t t = 0; t < n_tasks; ++t) task(t);
    return;
  }
  pool_for(threads, allowed)->run(n_tasks, threads - 1, task);
}

}  // namespace

int default_num_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

int max_num_threads() { return std::max(4 * default_num_threads(), 256); }

int get_num_threads() {
  std::lock_guard<std::mutex> lock(g_config_mu);
  if (g_num_threads == 0) g_num_threads = default_num_threads();
  return g_num_threads;
}

void set_num_threads(int n) {
  n = std::min(std::max(1, n), max_num_threads());
  {
    std::lock_guard<std::mutex> lock(g_config_mu);
    g_num_threads = n;
  }
  g_retry_threads.store(true);
  // Join the surplus now if no call is running (else the running call's successor does it).
  std::unique_lock<std::mutex> busy(*g_busy, std::try_to_lock);
  if (busy.owns_lock() && g_pool && g_pool->workers() > n - 1) g_pool->resize(n - 1);
}

void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& task) {
  if (n_tasks <= kCheckpointTasks || !t_checkpoint) {
    run_all(n_tasks, task);
    return;
  }
  for (int64_t lo = 0; lo < n_tasks; lo += kCheckpointTasks) {
    if (lo > 0) t_checkpoint();
    run_all(std::min(kCheckpointTasks, n_tasks - lo), [&](int64_t t) { task(lo + t); });
  }
}

ScopedCheckpoint::ScopedCheckpoint(void (*checkpoint)()) : previous_(t_checkpoint) { t_checkpoint = checkpoint; }
ScopedCheckpoint::~ScopedCheckpoint() { t_checkpoint = previous_; }

}  // namespace rdf
