// Metrics: the hub's counters, gauges and histograms, rendered in the Prometheus text format
// (version 0.0.4) for GET /metrics. Every name starts with "rexec_". Hot paths do not come here:
// the relay keeps plain integer counters (RelayCounters) that are copied in when /metrics is read.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace rx::hub {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Metrics {
 public:
  enum class Type { kCounter, kGauge, kHistogram };
  // Declares a family once, with its help line. Histograms use `buckets` (upper bounds).
  void describe(const std::string& name, Type type, const std::string& help, std::vector<double> buckets = {});
  void add(const std::string& name, const Labels& labels, double by = 1);  // counters
  void set(const std::string& name, const Labels& labels, double value);   // gauges (and copied counters)
  void clear(const std::string& name);                                     // a gauge family whose label sets change
  void observe(const std::string& name, const Labels& labels, double value);
  std::string render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (not cumulative), then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<double> buckets;
    std::map<std::string, double> values;  // rendered label set -> value
    std::map<std::string, Histogram> histograms;
  };
  static std::string label_text(const Labels& labels);
  std::map<std::string, Family> families_;
};

}  // namespace rx::hub
