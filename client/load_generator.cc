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

// The outcomes of the calls of one run; Record is called from gRPC's threads.
class Tally {
 public:
  explicit Tally(const LoadOptions& options) : check_(options.check) {}

  // One answer to requests[request_index]; `measured`: sent (and for the closed loop, answered)
  // inside the measured window. Every call counts in the whole-run totals.
  void Record(std::size_t request_index, bool measured, absl::Duration latency,
              absl::StatusOr<mpcd::v1::SolveResponse> response) {
    bool wrong = false;
    if (response.ok() && check_) {
      const absl::Status checked = check_(request_index, *response);
      if (!checked.ok()) {
        wrong = true;
        response = checked;
      }
    }
    absl::MutexLock lock(&mu_);
    ++(response.ok() ? total_ok_ : total_failed_);
    if (wrong) ++wrong_answers_;
    if (!measured) return;
    if (response.ok()) {
      latencies_.push_back(absl::ToDoubleSeconds(latency));
      ++requests_done_;
      problems_ += response->solutions_size();
      batch_size_sum_ += response->batch_size();
      queue_seconds_sum_ += response->timing().queue_seconds();
      queue_seconds_max_ = std::max(queue_seconds_max_, response->timing().queue_seconds());
      solve_seconds_sum_ += response->timing().solve_seconds();
    } else {
      const std::string code = wrong ? "WRONG_ANSWER" : CodeName(response.status().code());
      ++errors_;
      ++errors_by_code_[code];
      if (first_error_.empty())
        first_error_ = absl::StrCat(code, ": ", response.status().message());
    }
  }
  void CountSent() {
    absl::MutexLock lock(&mu_);
    ++sent_;
  }
  void CountSkipped() {
    absl::MutexLock lock(&mu_);
    ++skipped_;
  }

  // Problems answered and errors so far, for progress reports.
  std::pair<std::int64_t, std::int64_t> Progress() {
    absl::MutexLock lock(&mu_);
    return {problems_, errors_};
  }

  LoadResult Summarize(absl::Duration elapsed) {
    absl::MutexLock lock(&mu_);
    LoadResult result;
    result.elapsed = elapsed;
    result.requests = requests_done_;
    result.problems = problems_;
    result.errors = errors_;
    result.sent = sent_;
    result.skipped = skipped_;
    result.errors_by_code = errors_by_code_;
    result.first_error = first_error_;
    result.total_ok = total_ok_;
    result.total_failed = total_failed_;
    result.wrong_answers = wrong_answers_;
    const double seconds = absl::ToDoubleSeconds(result.elapsed);
    result.problems_per_second = problems_ / seconds;
    result.requests_per_second = requests_done_ / seconds;
    std::vector<double> all = latencies_;
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
      result.max_queue_seconds = queue_seconds_max_;
      result.mean_solve_seconds = solve_seconds_sum_ / requests_done_;
    }
    return result;
  }

 private:
  const std::function<absl::Status(std::size_t, const mpcd::v1::SolveResponse&)> check_;
  absl::Mutex mu_;
  std::vector<double> latencies_ ABSL_GUARDED_BY(mu_);  // of OK requests, seconds
  std::int64_t requests_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t problems_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t skipped_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t batch_size_sum_ ABSL_GUARDED_BY(mu_) = 0;
  double queue_seconds_sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  double queue_seconds_max_ ABSL_GUARDED_BY(mu_) = 0.0;
  double solve_seconds_sum_ ABSL_GUARDED_BY(mu_) = 0.0;
  std::map<std::string, std::int64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  std::int64_t total_ok_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t total_failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::int64_t wrong_answers_ ABSL_GUARDED_BY(mu_) = 0;
};

// Calls options.progress with the numbers so far.
void ReportProgress(const LoadOptions& options, absl::Time measure_from, Tally& tally) {
  if (!options.progress) return;
  const auto [problems, errors] = tally.Progress();
  options.progress(absl::Now() - measure_from, problems, errors);
}

// The shared state of one closed-loop run. Each caller is a chain of async calls: a call's
// callback records its outcome and starts the next call, until the end time.
class ClosedLoop {
 public:
  ClosedLoop(const std::vector<MpcClient*>& clients,
             const std::vector<mpcd::v1::SolveRequest>& requests, const LoadOptions& options)
      : clients_(clients), requests_(requests), options_(options), tally_(options) {}

  LoadResult Run() {
    const absl::Time start = absl::Now();
    measure_from_ = start + options_.warmup;
    end_ = measure_from_ + options_.duration;
    {
      absl::MutexLock lock(&mu_);
      active_ = options_.concurrency;
    }
    for (int i = 0; i < options_.concurrency; ++i) Send(i);

    absl::Time next_report = measure_from_ + absl::Seconds(1);
    absl::MutexLock lock(&mu_);
    while (active_ > 0) {
      const absl::Duration wait = std::max(absl::ZeroDuration(), next_report - absl::Now());
      mu_.AwaitWithTimeout(absl::Condition(this, &ClosedLoop::AllDone), wait);
      if (active_ > 0 && absl::Now() >= next_report) {
        mu_.Unlock();
        ReportProgress(options_, measure_from_, tally_);
        mu_.Lock();
        next_report += absl::Seconds(1);
      }
    }
    return tally_.Summarize(options_.duration);
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
                         const absl::Time now = absl::Now();
                         // Only calls that both started and ended inside the window are
                         // measured, so warm-up and the tail after the end do not bias the rates.
                         const bool measured = sent >= measure_from_ && now <= end_;
                         tally_.Record(caller % requests_.size(), measured, now - sent,
                                       std::move(response));
                         Send(caller);
                       });
  }

  const std::vector<MpcClient*>& clients_;
  const std::vector<mpcd::v1::SolveRequest>& requests_;
  const LoadOptions options_;
  absl::Time measure_from_;
  absl::Time end_;
  Tally tally_;

  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
};

// One open-loop run: this thread sends every request when it is due (catching up in a burst when
// it wakes late), the callbacks only record.
class OpenLoop {
 public:
  OpenLoop(const std::vector<MpcClient*>& clients,
           const std::vector<mpcd::v1::SolveRequest>& requests, const LoadOptions& options)
      : clients_(clients), requests_(requests), options_(options), tally_(options) {}

  LoadResult Run() {
    const absl::Time start = absl::Now();
    const absl::Time measure_from = start + options_.warmup;
    const absl::Time end = measure_from + options_.duration;
    const absl::Duration interval = absl::Seconds(1.0 / options_.rate);
    absl::Time next_report = measure_from + absl::Seconds(1);
    std::int64_t next = 0;  // index of the next request due
    for (;;) {
      const absl::Time now = absl::Now();
      absl::Time due = start + next * interval;
      for (; due <= now && due < end; due = start + (++next) * interval) {
        const bool measured = due >= measure_from;
        if (!TryStartCall()) {
          if (measured) tally_.CountSkipped();
          continue;
        }
        if (measured) tally_.CountSent();
        Send(next, measured);
      }
      if (due >= end) break;
      if (now >= next_report) {
        ReportProgress(options_, measure_from, tally_);
        next_report += absl::Seconds(1);
      }
      absl::SleepFor(std::min(due, next_report) - absl::Now());
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &OpenLoop::AllAnswered));
    return tally_.Summarize(options_.duration);
  }

 private:
  bool AllAnswered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; }

  bool TryStartCall() {
    absl::MutexLock lock(&mu_);
    if (in_flight_ >= options_.max_in_flight) return false;
    ++in_flight_;
    return true;
  }

  void Send(std::int64_t index, bool measured) {
    const absl::Time sent = absl::Now();
    MpcClient* client = clients_[index % clients_.size()];
    const std::size_t request = index % requests_.size();
    client->SolveAsync(
        requests_[request], options_.timeout,
        [this, request, sent, measured](absl::StatusOr<mpcd::v1::SolveResponse> response) {
          tally_.Record(request, measured, absl::Now() - sent, std::move(response));
          absl::MutexLock lock(&mu_);
          --in_flight_;
        });
  }

  const std::vector<MpcClient*>& clients_;
  const std::vector<mpcd::v1::SolveRequest>& requests_;
  const LoadOptions options_;
  Tally tally_;

  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::Status CheckCommonOptions(const std::vector<MpcClient*>& clients,
                                const std::vector<mpcd::v1::SolveRequest>& requests,
                                const LoadOptions& options) {
  if (clients.empty()) return absl::InvalidArgumentError("bench: no clients");
  if (requests.empty()) return absl::InvalidArgumentError("bench: no requests");
  if (options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration: must be > 0");
  }
  if (options.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("warmup: must be >= 0");
  }
  return absl::OkStatus();
}

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
  if (absl::Status status = CheckCommonOptions(clients, requests, options); !status.ok()) {
    return status;
  }
  if (options.concurrency < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("concurrency: must be >= 1, got ", options.concurrency));
  }
  ClosedLoop loop(clients, requests, options);
  return loop.Run();
}

absl::StatusOr<LoadResult> RunOpenLoop(const std::vector<MpcClient*>& clients,
                                       const std::vector<mpcd::v1::SolveRequest>& requests,
                                       const LoadOptions& options) {
  if (absl::Status status = CheckCommonOptions(clients, requests, options); !status.ok()) {
    return status;
  }
  if (!(options.rate > 0.0) || !std::isfinite(options.rate)) {
    return absl::InvalidArgumentError(absl::StrCat("rate: must be > 0, got ", options.rate));
  }
  if (options.max_in_flight < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_in_flight: must be >= 1, got ", options.max_in_flight));
  }
  OpenLoop loop(clients, requests, options);
  return loop.Run();
}

}  // namespace mpc
