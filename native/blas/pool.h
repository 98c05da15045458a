// A small fixed thread pool for the fused kernels: the calling thread plus (threads - 1) workers share a list of tasks
// through an atomic counter. Work is cut into tasks that do not depend on the thread count and each task writes only
// its own outputs (cross-task sums go through per-task partials added in task order), so any thread count gives
// bit-identical results. Leaves out: nested parallel regions (a task must not call run), work stealing, affinity.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

  /** Calls f(task) for every task in [0, tasks), spread over the pool; returns when all are done. */
  void run(int64_t tasks, const std::function<void(int64_t)>& f) {
    if (tasks <= 0) return;
    if (workers_.empty() || tasks == 1) {
      for (int64_t i = 0; i < tasks; i++) f(i);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &f;
      tasks_ = tasks;
      next_.store(0);
      active_ = (int)workers_.size();
      ++generation_;
    }
    cv_.notify_all();
    drain();
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return active_ == 0; });
    job_ = nullptr;
  }

 private:
  void drain() {
    for (int64_t i; (i = next_.fetch_add(1)) < tasks_;) (*job_)(i);
  }

  void loop(uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
      }
      drain();
      std::lock_guard<std::mutex> lk(mu_);
      if (--active_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t tasks_ = 0;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};
