#ifndef MPC_SERVER_PROCESS_METRICS_H_
#define MPC_SERVER_PROCESS_METRICS_H_

// The standard process metrics every Prometheus client library exports (prometheus-cpp has no
// process collector), read from /proc/self at each scrape (Linux):
//   process_cpu_seconds_total        counter  user + system CPU time
//   process_resident_memory_bytes    gauge    resident set size
//   process_virtual_memory_bytes     gauge    virtual memory size
//   process_open_fds                 gauge    open file descriptors
//   process_max_fds                  gauge    the soft limit on open file descriptors
//   process_start_time_seconds       gauge    since the Unix epoch
// A value that cannot be read is left out of the scrape rather than reported wrong.

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace mpc {

class ProcessMetrics : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace mpc

#endif  // MPC_SERVER_PROCESS_METRICS_H_
