// libFuzzer target: any bytes as a recording's .cast file -> CastIndex (the player's segmented
// source: hub/fanout/cast_index.h) through libvterm: extend it in two steps (a live recording
// read while it grows), then the index and every segment it lists. Nothing may crash, hang or
// break the rules a player checks. The first byte picks the segment size (1 to 256 bytes: many
// segments from a small input). The seed corpus (corpus/cast_index) holds small recordings.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "hub/fanout/cast_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  rx::hub::CastIndex index(uint64_t(data[0]) + 1);
  int fd = memfd_create("cast", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  size_t half = (size - 1) / 2;
  auto put = [&](const uint8_t* p, size_t n) {
    if (n && ::write(fd, p, n) != ssize_t(n)) std::abort();
  };
  put(data + 1, half);
  (void)index.extend(fd);
  put(data + 1 + half, size - 1 - half);
  if (index.extend(fd)) {
    auto doc = index.index_json();
    if (doc) {
      auto j = nlohmann::json::parse(*doc);  // must be JSON: a throw here is a finding
      double duration = j["duration"].get<double>(), previous = -1;
      size_t n = 0;
      for (const auto& s : j["segments"]) {
        double start = s["start"].get<double>();
        if (start <= previous || (n > 0 && start >= duration)) std::abort();
        previous = start;
        std::string url = s["url"];
        auto seg = index.segment_json(fd, n++, std::stoull(url.substr(url.find("to=") + 3)));
        if (!seg) std::abort();  // a URL the index gave must answer
        (void)nlohmann::json::parse(*seg);
      }
    }
  }
  ::close(fd);
  return 0;
}
