// DockerClient: the Docker Engine API over its unix socket (HTTP/1.1, versioned paths), driven by
// libcurl's multi interface on the hub's libuv loop, so no call ever blocks the loop: a request
// returns at once and its callback runs on the loop when the answer (or an error) is in.
// Why libcurl: its unix-socket option, HTTP/1.1 parsing and timeouts are done and well tested;
// lws 4.1's client has no unix-socket HTTP client.
#pragma once

#include <uv.h>

#include <curl/curl.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "hub/base/timer.h"

namespace rx::hub {

class DockerClient {
 public:
  struct Reply {
    int status = 0;      // HTTP status; 0 when Docker could not be reached
    std::string body;    // JSON as Docker sent it
    std::string error;   // transport error (status 0), or Docker's "message"
    bool ok() const { return status >= 200 && status < 300; }
  };
  using Callback = std::function<void(Reply)>;

  DockerClient(uv_loop_t* loop, std::string socket_path, std::string api_version = "v1.41");
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  // METHOD /vX.Y/path with an optional JSON body; `path` comes from docker_path(). The callback runs exactly once, on the loop
  // (never from inside request()), unless the client is destroyed first.
  void request(const std::string& method, const std::string& path, const std::string& body, Callback done,
               long timeout_ms = 30000);
  // Drops every request in flight without calling back (the hub is stopping): nothing of ours
  // keeps the loop alive after this.
  void cancel_all();

 private:
  struct Transfer;
  struct SocketWatch;
  static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int on_timer(CURLM* multi, long timeout_ms, void* userp);
  void drive(curl_socket_t s, int events);
  void finish_done();

  uv_loop_t* loop_;
  std::string socket_path_;
  std::string version_;
  CURLM* multi_ = nullptr;
  Timer timer_;  // curl's timeouts
  std::map<CURL*, std::unique_ptr<Transfer>> transfers_;
};

// Docker's error message from a JSON reply body ({"message": "..."}), or the body itself.
std::string docker_message(const std::string& body);

// An API path made of `parts`, each percent-encoded (everything but A-Z a-z 0-9 - . _ ~), so no
// part — an image name, a container id — can add a segment, a query or a fragment:
// docker_path({"images", "rexec/debian:12", "json"}) is "/images/rexec%2Fdebian%3A12/json".
// `query` ("force=true&v=true") is the caller's own, appended as it is.
std::string docker_path(std::initializer_list<std::string_view> parts, std::string_view query = "");
// One path part or query value, percent-encoded as docker_path() does.
std::string percent_encode(std::string_view part);

}  // namespace rx::hub
