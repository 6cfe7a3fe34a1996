// Finding 11 of issue 13: an image name went into the Docker API's path as it was, so
// "x/../../info?x=" made the hub call /info on the Docker socket (a 502 with Docker's message)
// and a name with a space gave a misleading 503 docker_unavailable. Image references are now
// checked against Docker's reference grammar before anything reaches Docker, and every path
// part the Docker client builds is percent-encoded.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "hub/docker/containers.h"
#include "tests/hostile/hostile_support.h"
#include "tests/integration/container_support.h"
#include "tests/support/api_expect.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

TEST(Finding11ImageNames, BadReferencesAre400BeforeDocker) {
  // A Docker socket that is not there: a refused name never gets as far as asking.
  HubFixture hub([] {
    auto f = HubFixture::relaxed_limits();
    // The static agent is there: the hub checks it before Docker (agent_binary_missing otherwise).
    f.insert(f.end(), {"--docker-socket", "/nonexistent/docker.sock", "--agent-binary", static_agent_path()});
    return f;
  }());
  LiveTerminal live(hub);
  for (std::string image : std::vector<std::string>{"x/../../info?x=", "rexec/debian 12", "rexec/debian:12 ", "Upper", "x/UPPER", "-lead/x", "x//y",
                            "x/", "/x", "x:", "x:tag with space", "x@sha256:zz", "x:" + std::string(129, 't'),
                            std::string(300, 'a'), "x\ny", "x%2F..%2Finfo", "x?all=1", "x#y", ".", "..", "a/./b",
                            "x:y:z", "x@sha256:" + std::string(31, 'a'), std::string("x\0y", 3)}) {
    json body{{"kind", "container"}, {"image", image}};
    auto r = hub.api("POST", "/api/v1/terminals", body.dump());
    SCOPED_TRACE("image " + json(image).dump());
    expect_error(r, 400, "bad_field");
    EXPECT_NE(r.body.find("image"), std::string::npos) << r.body;
  }
  // Well-formed references pass the check and only then meet Docker (absent here: 503).
  for (std::string image : std::vector<std::string>{"busybox", "rexec/debian:12", "localhost:5000/team/tool:v1.2-rc_3", "a.b-c__d/e.f",
                            "docker.io/library/ubuntu@sha256:" + std::string(64, 'a'), "sha256:" + std::string(64, 'b'),
                            "[::1]:5000/x:y"}) {
    json body{{"kind", "container"}, {"image", image}};
    auto r = hub.api("POST", "/api/v1/terminals", body.dump());
    SCOPED_TRACE("image " + image);
    expect_error(r, 503, "docker_unavailable");
  }
  live.expect_alive();
}

TEST(Finding11ImageNames, MissingImageIsImageNotFound) {
  REXEC_REQUIRE_DOCKER_OR_SKIP();
  HubFixture hub(container_hub_flags());
  json body{{"kind", "container"}, {"image", "rexec/no-such-image:1"}};
  expect_error(hub.api("POST", "/api/v1/terminals", body.dump()), 400, "image_not_found");
  ASSERT_TRUE(hub_answers(hub));
}

// What the Docker client writes on the socket: a listener that records the request line and
// answers 404, the way Docker answers an unknown image.
class RecordingSocket {
 public:
  RecordingSocket() : dir_("rexec-docker") {
    path_ = dir_ / "docker.sock";
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof(a.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ::listen(fd_, 4);
    thread_ = std::thread([this] {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return;  // the client never connected
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
      }
      line_ = req.substr(0, req.find("\r\n"));
      std::string body = R"({"message":"No such image"})";
      std::string resp = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)!::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~RecordingSocket() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable()) thread_.join();
  }
  const std::string& path() const { return path_; }
  std::string line() {
    if (thread_.joinable()) thread_.join();
    return line_;
  }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::string line_;
};

TEST(Finding11ImageNames, DockerPathsArePercentEncoded) {
  RecordingSocket docker;
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::optional<Status> result;
  {
    hub::Containers containers(&loop, docker.path(), "hub_test", "/nonexistent/agent", "/nonexistent/sock");
    // Straight to the client, past the API's check: the path must still stay one path part.
    containers.check_image("x/../../info?x= y#z%", [&](Status s) { result = s; });
    while (!result && uv_run(&loop, UV_RUN_ONCE)) {}
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  EXPECT_EQ(docker.line(), "GET /v1.41/images/x%2F..%2F..%2Finfo%3Fx%3D%20y%23z%25/json HTTP/1.1");
  ASSERT_TRUE(result);
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error().code, "image_not_found");
}

}  // namespace
}  // namespace rx::test
