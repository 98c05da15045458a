// A small fixed thread pool for the fused kernels: the calling thread plus (threads - 1) workers share a list of tasks
// through an atomic counter. Work is cut into tasks that do not depend on the thread count and each task writes only
// its own outputs (cross-task sums go through per-task partials added in task order), so any thread count gives
// bit-identical results. A run called from inside a task (a fused kernel's task calling the GEMM of gemm.h) runs its
// tasks inline on that thread. Leaves out: work stealing, affinity.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

class Pool {
 public:
  ~Pool() { resize(1); }

  int threads() const { return (int)workers_.size() + 1; }

  /** Joins the old workers and starts `n - 1` new ones (n >= 1). Call only between runs. */
  void resize(int n) {
    if (n < 1) n = 1;
    std::lock_guard<std::mutex> serial(runMu_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // Each worker starts from the generation of now: one read inside the thread could miss the first run.
    const uint64_t now = generation_;
    for (int i = 1; i < n; i++) workers_.emplace_back([this, now] { loop(now); });
  }

  /**
   * Calls f(task) for every task in [0, tasks), spread over the pool; returns when all are done. The caller works
   * too and waits only for tasks a worker has claimed, never for a worker that has not woken up yet (on a busy
   * machine a sleeping worker would otherwise cost a scheduler slice per call).
   */
  void run(int64_t tasks, const std::function<void(int64_t)>& f) {
    if (tasks <= 0) return;
    // One run at a time: the addon is process-wide, and Node worker threads may each call it.
    if (inTask_) {  // nested: this thread already holds a task of the open run
      for (int64_t i = 0; i < tasks; i++) f(i);
      return;
    }
    std::lock_guard<std::mutex> serial(runMu_);
    if (workers_.empty() || tasks == 1) {
      for (int64_t i = 0; i < tasks; i++) f(i);
      return;
    }
    auto job = std::make_shared<Job>(f, tasks);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = job;
      ++generation_;
    }
    cv_.notify_all();
    job->drain();
    std::unique_lock<std::mutex> lk(job->mu);
    job->cv.wait(lk, [&] { return job->finished == job->tasks; });
  }

 private:
  struct Job {
    Job(const std::function<void(int64_t)>& f, int64_t n) : fn(f), tasks(n) {}
    const std::function<void(int64_t)>& fn;
    const int64_t tasks;
    std::atomic<int64_t> next{0};
    int64_t finished = 0;  // guarded by mu
    std::mutex mu;
    std::condition_variable cv;
    /** Claims and runs tasks until none is left. fn is only called for a claimed task: the run is then still open. */
    void drain() {
      int64_t done = 0;
      inTask_ = true;
      for (int64_t i; (i = next.fetch_add(1)) < tasks; done++) fn(i);
      inTask_ = false;
      if (done == 0) return;
      std::lock_guard<std::mutex> lk(mu);
      finished += done;
      if (finished == tasks) cv.notify_all();
    }
  };

  void loop(uint64_t seen) {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
      }
      if (job) job->drain();
    }
  }

  static inline thread_local bool inTask_ = false;  // this thread is inside a task of some run
  std::vector<std::thread> workers_;
  std::mutex runMu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

/** The addon's one pool: fused.cc's kernels and gemm.h's products share it. */
inline Pool& sharedPool() {
  static Pool pool;
  return pool;
}
