#ifndef MPC_TESTS_TESTING_METRIC_VALUE_H_
#define MPC_TESTS_TESTING_METRIC_VALUE_H_

// Reads one metric from a prometheus-cpp registry (in-process) or from Prometheus text (a scrape).

#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace mpc::testing {

using MetricLabels = std::map<std::string, std::string>;

// The value of the first child of family `name` whose labels include `labels`: a counter's or
// gauge's value, a histogram's sample count. -1 when there is none.
inline double MetricValue(const prometheus::Registry& registry, const std::string& name,
                          const MetricLabels& labels = {}) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      MetricLabels have;
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        have[label.name] = label.value;
      }
      bool match = true;
      for (const auto& [key, value] : labels) {
        auto it = have.find(key);
        match = match && it != have.end() && it->second == value;
      }
      if (!match) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return -1.0;
      }
    }
  }
  return -1.0;
}

// The value of sample `name` (e.g. "mpcd_batch_size_sum") whose labels include `labels`, from
// Prometheus text exposition format. -1 when there is none.
inline double ScrapedValue(const std::string& text, const std::string& name,
                           const MetricLabels& labels = {}) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t brace = line.find('{');
    const std::size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string sample = line.substr(0, std::min(brace, space));
    if (sample != name) continue;
    MetricLabels have;
    if (brace != std::string::npos) {
      const std::size_t close = line.find('}', brace);
      std::string body = line.substr(brace + 1, close - brace - 1);
      std::size_t pos = 0;
      while (pos < body.size()) {
        const std::size_t eq = body.find('=', pos);
        const std::size_t q1 = body.find('"', eq);
        const std::size_t q2 = body.find('"', q1 + 1);
        if (eq == std::string::npos || q1 == std::string::npos || q2 == std::string::npos) break;
        have[body.substr(pos, eq - pos)] = body.substr(q1 + 1, q2 - q1 - 1);
        pos = q2 + 1;
        if (pos < body.size() && body[pos] == ',') ++pos;
      }
    }
    bool match = true;
    for (const auto& [key, value] : labels) {
      auto it = have.find(key);
      match = match && it != have.end() && it->second == value;
    }
    if (match) return std::strtod(line.c_str() + space + 1, nullptr);
  }
  return -1.0;
}

}  // namespace mpc::testing

#endif  // MPC_TESTS_TESTING_METRIC_VALUE_H_
