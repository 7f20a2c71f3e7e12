#ifndef MPC_CLIENT_LOAD_GENERATOR_H_
#define MPC_CLIENT_LOAD_GENERATOR_H_

// A closed-loop load generator for Solve (mpcctl bench): `concurrency` callers, each sending its
// next request as soon as its previous answer arrives, for a fixed time. Throughput is counted in
// problems per second; latency is per request, client side.

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
  // Called about once a second while measuring, with the numbers so far (from the caller's thread).
  std::function<void(absl::Duration elapsed, std::int64_t problems, std::int64_t errors)> progress;
  // If set, checks every OK answer (given the index of its request in `requests`); an error makes
  // the call count as failed, under the code "WRONG_ANSWER". Runs on gRPC threads, concurrently.
  std::function<absl::Status(std::size_t request_index, const mpcd::v1::SolveResponse& response)>
      check;
};

struct LoadResult {
  absl::Duration elapsed;                              // measured wall time
  std::int64_t requests = 0;                           // answered OK while measuring
  std::int64_t problems = 0;                           // their problems
  std::int64_t errors = 0;                             // failed while measuring
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
  double mean_solve_seconds = 0.0;
};

// Runs the load: caller i sends requests[i % requests.size()] through clients[i % clients.size()].
// Fails only on bad options; request failures are counted in the result.
absl::StatusOr<LoadResult> RunClosedLoop(const std::vector<MpcClient*>& clients,
                                         const std::vector<mpcd::v1::SolveRequest>& requests,
                                         const LoadOptions& options);

// The nearest-rank percentile (q in [0, 1]) of `sorted` (ascending); 0 when empty.
double Percentile(const std::vector<double>& sorted, double q);

}  // namespace mpc

#endif  // MPC_CLIENT_LOAD_GENERATOR_H_
