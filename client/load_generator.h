#ifndef MPC_CLIENT_LOAD_GENERATOR_H_
#define MPC_CLIENT_LOAD_GENERATOR_H_

// Load generators for Solve (mpcctl bench). Closed loop: `concurrency` callers, each sending its
// next request as soon as its previous answer arrives, for a fixed time. Open loop: requests sent
// at a fixed rate whatever the answers, which is how overload looks from a server (many clients
// that do not slow down when it does). Throughput is counted in problems per second; latency is
// per request, client side.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/mpc_client.h"
#include "mpcd/v1/mpcd.pb.h"

namespace mpc {

struct LoadOptions {
  int concurrency = 1;                           // callers, >= 1
  absl::Duration duration = absl::Seconds(10);   // measured time, > 0
  absl::Duration warmup = absl::ZeroDuration();  // run before measuring, >= 0
  absl::Duration timeout = absl::Seconds(30);    // per request
  // Open loop (RunOpenLoop): requests per second, sent evenly spaced, > 0; and the most calls in
  // flight at once: a request due while that many are unanswered is not sent (counted `skipped`),
  // so the generator's own memory stays bounded when the server stops answering.
  double rate = 0.0;
  int max_in_flight = 10000;
  // Called about once a second while measuring, with the numbers so far (from the caller's thread).
  std::function<void(absl::Duration elapsed, std::int64_t problems, std::int64_t errors)> progress;
  // If set, checks every OK answer (given the index of its request in `requests`); an error makes
  // the call count as failed, under the code "WRONG_ANSWER". Runs on gRPC threads, concurrently.
  std::function<absl::Status(std::size_t request_index, const mpcd::v1::SolveResponse& response)>
      check;
};

struct LoadResult {
  absl::Duration elapsed;     // measured wall time
  std::int64_t requests = 0;  // answered OK while measuring
  std::int64_t problems = 0;  // their problems
  std::int64_t errors = 0;    // failed while measuring
  std::int64_t sent = 0;      // open loop: requests sent while measuring
  std::int64_t skipped = 0;   // open loop: due while measuring but not sent (max_in_flight)
  std::map<std::string, std::int64_t> errors_by_code;  // e.g. {"UNAVAILABLE": 3}
  std::string first_error;  // the first failure's "CODE: message", if any
  // Every call, warm-up and tail included (the counts above cover only the measured window): a
  // call is either answered OK (and passed `check`) or failed, so nothing goes unaccounted.
  std::int64_t total_ok = 0;
  std::int64_t total_failed = 0;
  std::int64_t wrong_answers = 0;  // failed `check`, whole run
  double problems_per_second = 0.0;
  double requests_per_second = 0.0;
  // Client-side latency of OK requests, seconds.
  double latency_mean = 0.0;
  double latency_p50 = 0.0;
  double latency_p90 = 0.0;
  double latency_p99 = 0.0;
  double latency_max = 0.0;
  // From the responses: mean batch size and queue/solve time reported by the server.
  double mean_batch_size = 0.0;
  double mean_queue_seconds = 0.0;
  double max_queue_seconds = 0.0;
  double mean_solve_seconds = 0.0;
};

// Runs the load: caller i sends requests[i % requests.size()] through clients[i % clients.size()].
// Fails only on bad options; request failures are counted in the result.
absl::StatusOr<LoadResult> RunClosedLoop(const std::vector<MpcClient*>& clients,
                                         const std::vector<mpcd::v1::SolveRequest>& requests,
                                         const LoadOptions& options);

// Sends options.rate requests per second (the k-th is requests[k % size] through
// clients[k % size]) for warmup + duration, then waits for every answer. Counted: the requests sent
// while measuring, however late their answers come (so slow answers are never left out of the
// latency). options.concurrency is not used. Fails only on bad options.
absl::StatusOr<LoadResult> RunOpenLoop(const std::vector<MpcClient*>& clients,
                                       const std::vector<mpcd::v1::SolveRequest>& requests,
                                       const LoadOptions& options);

// The nearest-rank percentile (q in [0, 1]) of `sorted` (ascending); 0 when empty.
double Percentile(const std::vector<double>& sorted, double q);

}  // namespace mpc

#endif  // MPC_CLIENT_LOAD_GENERATOR_H_
