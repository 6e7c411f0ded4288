#include "parallel.h"

#include <sched.h>
#include <unistd.h>

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
// runs torch or BLAS thread pools is not oversubscribed while those run.
class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Runs the job with `helpers` workers plus the caller. The caller holds busy_ for the whole call.
  void run(int64_t n_tasks, int helpers, const std::function<void(int64_t)>& task) {
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
    wake_.notify_all();
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

  void worker_loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || (generation_ != seen && helpers_wanted_ > 0); });
      if (stop_) return;
      seen = generation_;
      --helpers_wanted_;
      ++helpers_active_;
      lock.unlock();
      drain();
      lock.lock();
      if (--helpers_active_ == 0) done_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  int helpers_wanted_ = 0;
  int helpers_active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

std::mutex g_config_mu;
int g_num_threads = 0;  // 0: not yet set, use default_num_threads()
Pool* g_pool = nullptr;
pid_t g_pool_pid = 0;
std::mutex g_busy;  // held by the one call that owns the pool

// The pool for `threads` threads; recreated after fork (the child has no worker threads) and on resize.
// The old pool is leaked after a fork since its threads do not exist in the child.
Pool* pool_for(int threads) {
  std::lock_guard<std::mutex> lock(g_config_mu);
  if (g_pool && g_pool_pid != getpid()) g_pool = nullptr;
  if (!g_pool || g_pool->workers() < threads - 1) {
    delete g_pool;
    g_pool = new Pool(threads - 1);
    g_pool_pid = getpid();
  }
  return g_pool;
}

}  // namespace

int default_num_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

int get_num_threads() {
  std::lock_guard<std::mutex> lock(g_config_mu);
  if (g_num_threads == 0) g_num_threads = default_num_threads();
  return g_num_threads;
}

void set_num_threads(int n) {
  std::lock_guard<std::mutex> lock(g_config_mu);
  g_num_threads = std::max(1, n);
}

void parallel_for(int64_t n_tasks, const std::function<void(int64_t)>& task) {
  const int threads = static_cast<int>(std::min<int64_t>(get_num_threads(), n_tasks));
  std::unique_lock<std::mutex> busy(g_busy, std::try_to_lock);
  if (threads <= 1 || !busy.owns_lock()) {
    for (int64_t t = 0; t < n_tasks; ++t) task(t);
    return;
  }
  pool_for(threads)->run(n_tasks, threads - 1, task);
}

}  // namespace rdf
