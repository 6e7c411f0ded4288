#include "parallel.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace rdf {
namespace {

// How long a worker keeps polling for the next call after its last one, and how long a caller polls for its
// helpers to finish before sleeping (nanoseconds; 0: sleep at once). Waking a sleeping thread costs more
// than the tasks of a small call on this kind of machine (measured on a 2-vCPU KVM guest: the notify ~6 us,
// the worker running ~16 us after it, the caller's own wake-up at the end another ~16 us, and a woken
// worker placed on the caller's CPU, where the two take turns instead of running side by side):
// BENCHMARKS.md, "the pool's wake-ups". A polling thread needs no wake-up. The window is short so that an
// idle pool still costs no CPU a few hundred microseconds after a call (tests/test_pool_spin.py).
// REGDROP_POOL_SPIN_US (whole microseconds, 0 to 10^6) sets it at load, e.g. 0 under a CPU quota, where
// polling spends the quota; other values are ignored.
constexpr int64_t kMaxSpinNs = 1000000000;
int64_t spin_ns_from_env() {
  const char* env = std::getenv("REGDROP_POOL_SPIN_US");
  if (env == nullptr || *env == '\0' || std::strlen(env) > 7) return kDefaultSpinNs;
  int64_t us = 0;
  for (const char* c = env; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9') return kDefaultSpinNs;  // digits only: no sign, no spaces
    us = 10 * us + (*c - '0');
  }
  return us <= kMaxSpinNs / 1000 ? us * 1000 : kDefaultSpinNs;
}
std::atomic<int64_t> g_spin_ns{spin_ns_from_env()};

using Clock = std::chrono::steady_clock;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls done() for up to ns nanoseconds; true when it returned true. The clock is read every 64 polls.
template <class Done>
bool poll_for(int64_t ns, const Done& done) {
  if (ns <= 0) return false;
  const auto until = Clock::now() + std::chrono::nanoseconds(ns);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (Clock::now() >= until) return done();
  }
}

int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

// A thread's CPUs (Linux; elsewhere nothing is placed).
struct CpuMask {
#if defined(__linux__)
  cpu_set_t set;
  bool known = false;
  void read(std::thread& t) { known = pthread_getaffinity_np(t.native_handle(), sizeof set, &set) == 0; }
#else
  void read(std::thread&) {}
#endif
};

// Places worker thread t, whose own CPUs (those it started with) are `own`, on them less `cpu`, the
// caller's; cpu < 0, or `cpu` its only one: on all of them. A worker on the caller's CPU takes turns with
// the caller there instead of running beside it, and the scheduler does put it there: a worker woken by
// the caller was placed on the caller's CPU (its own idle, the guest's vCPU halted), and a polling one
// shared the caller's CPU with the other one idle, for longer than a small call lasts (measured: calls of
// 2-4 tasks ran one task at a time). The cost: on 2 CPUs the worker has one CPU, and when another process
// loads it the scheduler can no longer move the worker to the caller's idle one (the caller then runs more
// of the tasks: a call waits at most for the worker's last task).
void place_worker(std::thread& t, const CpuMask& own, int cpu) {
#if defined(__linux__)
  if (!own.known) return;
  cpu_set_t set = own.set;
  if (cpu >= 0 && CPU_ISSET(cpu, &set) && CPU_COUNT(&set) >= 2) CPU_CLR(cpu, &set);
  pthread_setaffinity_np(t.native_handle(), sizeof set, &set);  // on failure it keeps the CPUs it has
#else
  (void)t;
  (void)own;
  (void)cpu;
#endif
}

// Workers poll for a new call for g_spin_ns after their last one, then sleep on a condition variable: an
// idle pool costs no CPU, so a process that also runs torch or BLAS thread pools is not oversubscribed while
// those run. Only the call that holds the busy lock (below) runs or resizes the pool. generation_, live_,
// helpers_wanted_ and helpers_active_ change under mu_ and are atomic so that the polls can read them
// without it (a polling worker still joins a call under mu_); a caller notifies only threads that sleep
// (sleeping_, caller_sleeps_), so a call that finds its workers polling makes no system call.
class Pool {
 public:
  ~Pool() { resize(0); }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Starts or joins workers until there are n; returns false when the system refused to start one (the
  // pool then keeps the workers it has).
  bool resize(int n) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.store(n);
      // With more threads than CPUs a polling thread takes a CPU from one that has work: poll (and place
      // the workers) only when each thread of a call can have a CPU of its own.
      polls_.store(n + 1 <= default_num_threads());
    }
    if (n < workers()) {
      wake_.notify_all();  // workers with index >= live_ exit (polling ones see live_ change)
      for (size_t i = static_cast<size_t>(n); i < threads_.size(); ++i) threads_[i].join();
      threads_.resize(static_cast<size_t>(n));
      own_cpus_.resize(static_cast<size_t>(n));
      placed_.resize(static_cast<size_t>(n));
      return true;
    }
    bool all = true;
    try {
      threads_.reserve(static_cast<size_t>(n));
      own_cpus_.reserve(static_cast<size_t>(n));
      placed_.reserve(static_cast<size_t>(n));
      // A new worker joins the next call, the one about to start if this is a call's resize.
      const uint64_t start = generation_.load();
      while (workers() < n) {
        const int index = workers();
        threads_.emplace_back([this, index, start] { worker_loop(index, start); });
        own_cpus_.emplace_back();
        own_cpus_.back().read(threads_.back());  // its creator's, which it inherits
        placed_.push_back(kUnplaced);
      }
    } catch (const std::exception&) {  // std::system_error from std::thread, or bad_alloc
      all = false;
      std::lock_guard<std::mutex> lock(mu_);
      live_.store(workers());
      own_cpus_.resize(threads_.size());
      placed_.resize(threads_.size());
    }
    return all;
  }

  // Runs the job with up to `helpers` workers plus the caller.
  void run(int64_t n_tasks, int helpers, const std::function<void(int64_t)>& task) {
    helpers = std::min(helpers, workers());
    // Off the caller's CPU while they poll; back on their own CPUs when not (-1; a worker never placed is
    // left alone). System calls only for a worker placed otherwise: the caller moved since the last call,
    // or the pool or the setting changed.
    const int cpu = spin_ns_now() > 0 ? std::max(current_cpu(), -1) : -1;
    for (size_t i = 0; i < threads_.size(); ++i) {
      if (placed_[i] == cpu || (cpu == -1 && placed_[i] == kUnplaced)) continue;
      place_worker(threads_[i], own_cpus_[i], cpu);
      placed_[i] = cpu;
    }
    int sleeping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = &task;
      n_tasks_ = n_tasks;
      next_.store(0);
      helpers_wanted_ = helpers;
      helpers_active_.store(0);
      error_ = nullptr;
      generation_.store(generation_.load() + 1);
      sleeping = sleeping_;
    }
    // Wake only as many sleeping workers as can take part: a missed wake-up costs speed, never a result,
    // since the caller runs whatever tasks are left.
    if (sleeping > 0) {
      if (helpers >= workers()) {
        wake_.notify_all();
      } else {
        for (int i = 0; i < std::min(helpers, sleeping); ++i) wake_.notify_one();
      }
    }
    drain();
    const int64_t spin_ns = spin_ns_now();
    std::unique_lock<std::mutex> lock(mu_);
    // Workers that never joined this generation must not join it late: close it before waiting.
    helpers_wanted_ = 0;
    if (helpers_active_.load() != 0) {
      lock.unlock();  // the helpers are in their last task: poll before sleeping
      poll_for(spin_ns, [this] { return helpers_active_.load(std::memory_order_acquire) == 0; });
      lock.lock();
      caller_sleeps_ = true;
      done_.wait(lock, [this] { return helpers_active_.load() == 0; });
      caller_sleeps_ = false;
    }
    task_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  int64_t spin_ns_now() const {
    return polls_.load(std::memory_order_relaxed) ? g_spin_ns.load(std::memory_order_relaxed) : 0;
  }

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

  void worker_loop(int index, uint64_t seen) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (index >= live_.load()) return;
      if (generation_.load() != seen && helpers_wanted_ > 0) {
        seen = generation_.load();
        --helpers_wanted_;
        helpers_active_.store(helpers_active_.load() + 1);
        lock.unlock();
        drain();
        lock.lock();
        helpers_active_.store(helpers_active_.load() - 1, std::memory_order_release);
        if (helpers_active_.load() == 0 && caller_sleeps_) done_.notify_all();
        continue;
      }
      seen = generation_.load();  // a call this worker missed is closed, or wants no more helpers
      lock.unlock();
      // A call that wants no more helpers is passed over without ending the poll (seen moves on).
      const bool news = poll_for(spin_ns_now(), [&] {
        const uint64_t g = generation_.load(std::memory_order_acquire);
        if (g != seen) {
          if (helpers_wanted_.load(std::memory_order_relaxed) > 0) return true;
          seen = g;
        }
        return index >= live_.load(std::memory_order_relaxed);
      });
      lock.lock();
      if (news) continue;
      ++sleeping_;
      wake_.wait(lock, [&] { return index >= live_.load() || generation_.load() != seen; });
      --sleeping_;
    }
  }

  std::vector<std::thread> threads_;  // worker i is threads_[i]
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* task_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> live_{0};  // workers with a smaller index keep running
  std::atomic<int> helpers_wanted_{0};
  std::atomic<int> helpers_active_{0};
  int sleeping_ = 0;           // workers waiting on wake_
  bool caller_sleeps_ = false;  // the caller waits on done_
  std::atomic<bool> polls_{false};   // each thread of a call has a CPU of its own (resize)
  static constexpr int kUnplaced = -2;
  std::vector<CpuMask> own_cpus_;  // worker i's CPUs when it started
  std::vector<int> placed_;        // the CPU worker i is kept off (-1: none, on its own CPUs; kUnplaced: never placed)
  std::atomic<uint64_t> generation_{0};
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

int64_t pool_spin_ns() { return g_spin_ns.load(std::memory_order_relaxed); }
void set_pool_spin_ns(int64_t ns) {
  g_spin_ns.store(std::min(std::max<int64_t>(ns, 0), kMaxSpinNs), std::memory_order_relaxed);
}

ScopedCheckpoint::ScopedCheckpoint(void (*checkpoint)()) : previous_(t_checkpoint) { t_checkpoint = checkpoint; }
ScopedCheckpoint::~ScopedCheckpoint() { t_checkpoint = previous_; }

}  // namespace rdf
