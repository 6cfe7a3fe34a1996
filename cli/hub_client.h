// HubClient: the hub's REST API (docs/api.md) over libcurl, one call at a time. The token goes in
// an Authorization header, never in a URL or a command line. Every failure is a HubError whose
// message is the one line the user sees: which hub could not be reached and why, how to log in
// again after a 401, or the hub's own message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/config.h"
#include "cli/failure.h"

namespace rx::cli {

class HubError : public Failure {
 public:
  HubError(const std::string& message, long http_status, std::string code)
      : Failure(message), http_status_(http_status), code_(std::move(code)) {}
  long http_status() const { return http_status_; }  // 0: the hub was not reached
  const std::string& code() const { return code_; }    // the hub's error code ("not_found", ...)

 private:
  long http_status_;
  std::string code_;
};

class HubClient {
 public:
  explicit HubClient(Profile profile);
  ~HubClient();
  HubClient(const HubClient&) = delete;
  HubClient& operator=(const HubClient&) = delete;

  nlohmann::json get(const std::string& path);
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  nlohmann::json del(const std::string& path);

  // POST with `Accept: application/x-ndjson`: on_line gets each JSON line as it arrives.
  // `stop` is asked a few times a second; true ends the request (the hub then cancels the work).
  // Returns false when stopped.
  bool post_stream(const std::string& path, const nlohmann::json& body,
                   const std::function<void(const nlohmann::json&)>& on_line, const std::function<bool()>& stop);

  // File transfers (docs/files.md), streamed: neither side is ever held whole in memory.
  // `progress` gets the bytes moved so far and the total (0: unknown) at least once a second;
  // false from it ends the transfer (the hub then cancels and keeps nothing).
  using Progress = std::function<bool(uint64_t done, uint64_t total)>;
  // PUT with the body read from `fd` as curl sends it: `size` bytes, or chunked to EOF when
  // nullopt (a pipe). The hub's JSON answer, or nullopt when stopped by `progress`. A failed
  // read of `fd` throws a Failure naming `source`.
  std::optional<nlohmann::json> put_stream(const std::string& path, int fd, std::optional<uint64_t> size,
                                           const std::string& source, const Progress& progress);
  // GET whose body (when 2xx) goes to `sink` piece by piece. False when `progress` or the sink
  // (its write failed: it knows why) stopped it; a body cut short is a HubError.
  bool get_stream(const std::string& path, const std::function<bool(const char*, size_t)>& sink,
                  const Progress& progress);

  const Profile& profile() const { return profile_; }
  // The hub's URL with ws:// or wss:// for a WebSocket path.
  std::string ws_url(const std::string& path) const;

 private:
  // One transfer: the common options and headers, then `configure` adds the body's sink.
  struct Outcome {
    int rc = 0;          // CURLcode
    long os_errno = 0;
    long status = 0;     // HTTP status
    std::string error;   // curl's error text
  };
  Outcome perform(const char* method, const std::string& path, const std::string* body, const char* accept,
                  const std::function<void(void*)>& configure);
  nlohmann::json request(const char* method, const std::string& path, const std::string* body);
  [[noreturn]] void fail_status(long status, const std::string& body) const;
  [[noreturn]] void fail_transport(int curl_code, long os_errno, const char* detail) const;

  Profile profile_;
  struct Curl;
  std::unique_ptr<Curl> curl_;
};

}  // namespace rx::cli
