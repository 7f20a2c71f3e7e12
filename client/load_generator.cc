#include "client/load_generator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace mpc {
namespace {

// Canonical code names, as gRPC prints them.
std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  return name.empty() ? absl::StrCat("CODE_", static_cast<int>(code)) : name;
}

// The shared state of one run. Each caller is a chain of async calls: a call's callback records
// its outcome and starts the next call, until the end time.
class ClosedLoop {
 public:
  ClosedLoop(const std::vector<MpcClient*>& clients,
             const std::vector<mpcd::v1::SolveRequest>& requests, const LoadOptions& options)
      : clients_(clients), requests_(requests), options_(options) {}

  LoadResult Run() {
    const absl::Time start = absl::Now();
    measure_from_ = start + options_.warmup;
    end_ = measure_from_ + options_.duration;
    {
      absl::MutexLock lock(&mu_);
      active_ = options_.concurrency;
    }
    latencies_.resize(options_.concurrency);
    for (int i = 0; i < options_.concurrency; ++i) Send(i);

    absl::Time next_report = measure_from_ + absl::Seconds(1);
    absl::MutexLock lock(&mu_);
    while (active_ > 0) {
      const absl::Duration wait = std::max(absl::ZeroDuration(), next_report - absl::Now());
      mu_.AwaitWithTimeout(absl::Condition(this, &ClosedLoop::AllDone), wait);
      if (active_ > 0 && absl::Now() >= next_report) {
        const std::int64_t problems = problems_;
        const std::int64_t errors = errors_;
        mu_.Unlock();
        if (options_.progress) options_.progress(absl::Now() - measure_from_, problems, errors);
        mu_.Lock();
        next_report += absl::Seconds(1);
      }
    }
    return Summarize();
  }

 private:
  bool AllDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; }

  void Send(int caller) {
    const absl::Time sent = absl::Now();
    if (sent >= end_) {
      absl::MutexLock lock(&mu_);
      --active_;
      return;
    }
    MpcClient* client = clients_[caller % clients_.size()];
    client->SolveAsync(requests_[caller % requests_.size()], options_.timeout,
                       [this, caller, sent](absl::StatusOr<mpcd::v1::SolveResponse> response) {
                         Record(caller, sent, std::move(response));
                         Send(caller);
                       });
  }

  void Record(int caller, absl::Time sent, absl::StatusOr<mpcd::v1::SolveResponse> response) {
    const absl::Time now = absl::Now();
    bool wrong = false;
    if (response.ok() && options_.check) {
      const absl::Status checked = options_.check(caller % requests_.size(), *response);
      if (!checked.ok()) {
        wrong = true;
        response = checked;
      }
    }
    {
      absl::MutexLock lock(&mu_);
      ++(response.ok() ? total_ok_ : total_failed_);
      if (wrong) ++wrong_answers_;
    }
    // Only calls that both started and ended inside the window count, so warm-up and the tail
    // after the end do not bias the rates.
    if (sent < measure_from_ || now > end_) return;
    if (response.ok()) {
      // Each caller's vector is touched only by its own chain, one call at a time.
      latencies_[caller].push_back(absl::ToDoubleSeconds(now - sent));
    }
    absl::MutexLock lock(&mu_);
    if (response.ok()) {
      ++requests_done_;
      problems_ += response->solutions_size();
      batch_size_sum_ += response->batch_size();
      queue_seconds_sum_ += response->timing().queue_seconds();
      solve_seconds_sum_ += response->timing().solve_seconds();
    } else {
      const std::string code = wrong ? "WRONG_ANSWER" : CodeName(response.status().code());
      ++errors_;
      ++errors_by_code_[code];
      if (first_error_.empty()) first_error_ = absl::StrCat(code, ": ", response.status().message());
    }
  }

  LoadResult Summarize() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    LoadResult result;
    result.elapsed = options_.duration;
    result.requests = requests_done_;
    result.problems = problems_;
    result.errors = errors_;
    result.errors_by_code = errors_by_code_;
    result.first_error = first_error_;
    result.total_ok = total_ok_;
    result.total_failed = total_failed_;
    result.wrong_answers = wrong_answers_;
    const double seconds = absl::ToDoubleSeconds(result.elapsed);
    result.problems_per_second = problems_ / seconds;
    result.requests_per_second = requests_done_ / seconds;
    std::vector<double> all;
    for (const std::vector<double>& caller : latencies_) {
      all.insert(all.end(), caller.begin(), caller.end());
    }
    std::sort(all.begin(), all.end());
    if (!all.empty()) {
      double sum = 0.0;
      for (double latency : all) sum += latency;
      result.latency_mean = sum / all.size();
      result.latency_max = all.back();
    }
    result.latency_p50 = Percentile(all, 0.50);
    result.latency_p90 = Percentile(all, 0.90);
    result.latency_p99 = Percentile(all, 0.99);
    if (requests_done_ > 0) {
      result.mean_batch_size = static_cast<double>(batch_size_sum_) / requests_done_;
      result.mean_queue_seconds = queue_seconds_sum_ / requests_done_;
      result.mean_solve_seconds = solve_seconds_sum_ / requests_done_;
    }
    return result;
  }

  const std::vector<MpcClient*>& clients_;
  const std::vector<mpcd::v1::SolveRequest>& requests_;
  const LoadOptions options_;
  absl::Time measure_from_;
  absl::Time end_;
  std::vector<std::vector<double>> latencies_;

  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t requests_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t problems_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t batch_size_sum_ ABSL_GUARDED_BY(mu_) = 0;
  double queue_seconds_sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  double solve_seconds_sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  std::map<std::string, std::int64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  std::int64_t total_ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t total_failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t wrong_answers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const std::size_t index = static_cast<std::size_t>(std::max(1.0, rank)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

absl::StatusOr<LoadResult> RunClosedLoop(const std::vector<MpcClient*>& clients,
                                         const std::vector<mpcd::v1::SolveRequest>& requests,
                                         const LoadOptions& options) {
  if (clients.empty()) return absl::InvalidArgumentError("bench: no clients");
  if (requests.empty()) return absl::InvalidArgumentError("bench: no requests");
  if (options.concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency: must be >= 1, got ", options.concurrency));
  }
  if (options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration: must be > 0");
  }
  if (options.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("warmup: must be >= 0");
  }
  ClosedLoop loop(clients, requests, options);
  return loop.Run();
}

}  // namespace mpc
