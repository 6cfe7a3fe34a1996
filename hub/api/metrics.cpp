#include "hub/api/metrics.h"

#include <fmt/format.h>

namespace rx::hub {

void Metrics::describe(const std::string& name, Type type, const std::string& help, std::vector<double> buckets) {
  Family& f = families_[name];
  f.type = type;
  f.help = help;
  f.buckets = std::move(buckets);
}

std::string Metrics::label_text(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    out += out.empty() ? "" : ",";
    out += k + "=\"";
    for (char c : v) {  // the format's three escapes
      if (c == '\\') out += "\\\\";
      else if (c == '"') out += "\\\"";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    out += '"';
  }
  return out;
}

void Metrics::add(const std::string& name, const Labels& labels, double by) { families_[name].values[label_text(labels)] += by; }

void Metrics::set(const std::string& name, const Labels& labels, double value) {
  families_[name].values[label_text(labels)] = value;
}

void Metrics::clear(const std::string& name) { families_[name].values.clear(); }

void Metrics::observe(const std::string& name, const Labels& labels, double value) {
  Family& f = families_[name];
  Histogram& h = f.histograms[label_text(labels)];
  if (h.counts.empty()) h.counts.assign(f.buckets.size() + 1, 0);
  size_t i = 0;
  while (i < f.buckets.size() && value > f.buckets[i]) ++i;
  ++h.counts[i];
  h.sum += value;
  ++h.count;
}

std::string Metrics::render() const {
  std::string out;
  auto braces = [](const std::string& labels) { return labels.empty() ? std::string() : "{" + labels + "}"; };
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kCounter ? "counter" : f.type == Type::kGauge ? "gauge" : "histogram";
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, f.help, name, type);
    for (const auto& [labels, v] : f.values) out += fmt::format("{}{} {}\n", name, braces(labels), v);
    for (const auto& [labels, h] : f.histograms) {
      std::string sep = labels.empty() ? "" : labels + ",";
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        cumulative += h.counts[i];
        out += fmt::format("{}_bucket{{{}le=\"{}\"}} {}\n", name, sep, f.buckets[i], cumulative);
      }
      out += fmt::format("{}_bucket{{{}le=\"+Inf\"}} {}\n", name, sep, h.count);
      out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces(labels), h.sum, name, braces(labels), h.count);
    }
  }
  return out;
}

}  // namespace rx::hub
