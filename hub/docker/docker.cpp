#include "hub/docker/docker.h"

#include <nlohmann/json.hpp>

#include "hub/base/guard.h"

namespace rx::hub {

struct DockerClient::Transfer {
  std::string request_body;
  std::string response;
  curl_slist* headers = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  Callback done;
  ~Transfer() { curl_slist_free_all(headers); }
};

// One uv_poll per socket curl wants watched. Heap-allocated and freed in the close callback.
struct DockerClient::SocketWatch {
  uv_poll_t poll;
  DockerClient* client;
  curl_socket_t fd;
};

namespace {
// Called by curl (C): nothing may be thrown through it. A reply too big to hold ends the transfer.
size_t collect(char* data, size_t size, size_t n, void* userp) {
  try {
    static_cast<std::string*>(userp)->append(data, size * n);
    return size * n;
  } catch (...) {
    return 0;
  }
}
}  // namespace

std::string docker_message(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return body;
}

std::string percent_encode(std::string_view part) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : part) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string docker_path(std::initializer_list<std::string_view> parts, std::string_view query) {
  std::string out;
  for (auto part : parts) {
    out += '/';  // appended, not "/" + b: GCC 12 -O3 warns on that (-Wrestrict, bug 105329)
    out += percent_encode(part);
  }
  if (!query.empty()) out += "?" + std::string(query);
  return out;
}

DockerClient::DockerClient(uv_loop_t* loop, std::string socket_path, std::string api_version)
    : loop_(loop),
      socket_path_(std::move(socket_path)),
      version_(std::move(api_version)),
      timer_(loop, [this] { drive(CURL_SOCKET_TIMEOUT, 0); }) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // reference counted by libcurl
  multi_ = curl_multi_init();
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &DockerClient::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &DockerClient::on_timer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

void DockerClient::cancel_all() {
  for (auto& [easy, t] : transfers_) {
    curl_multi_remove_handle(multi_, easy);  // closes its sockets through on_socket(REMOVE)
    curl_easy_cleanup(easy);
  }
  transfers_.clear();
  timer_.stop();
}

DockerClient::~DockerClient() {
  cancel_all();
  curl_multi_cleanup(multi_);
  curl_global_cleanup();
}

void DockerClient::request(const std::string& method, const std::string& path, const std::string& body, Callback done,
                           long timeout_ms) {
  CURL* easy = curl_easy_init();
  auto t = std::make_unique<Transfer>();
  t->request_body = body;
  t->done = std::move(done);
  std::string url = "http://docker/" + version_ + path;
  curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t->response);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http");
  if (!body.empty() || method == "POST") {
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->request_body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, long(t->request_body.size()));
  }
  transfers_[easy] = std::move(t);
  curl_multi_add_handle(multi_, easy);  // curl asks for a timer; the transfer starts from the loop
}

int DockerClient::on_socket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
  auto* self = static_cast<DockerClient*>(userp);
  auto* watch = static_cast<SocketWatch*>(socketp);
  if (what == CURL_POLL_REMOVE) {
    if (watch) {
      uv_poll_stop(&watch->poll);
      uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll),
               [](uv_handle_t* h) { delete static_cast<SocketWatch*>(h->data); });
      curl_multi_assign(self->multi_, s, nullptr);
    }
    return 0;
  }
  if (!watch) {
    watch = new SocketWatch{{}, self, s};
    uv_poll_init_socket(self->loop_, &watch->poll, s);
    watch->poll.data = watch;
    curl_multi_assign(self->multi_, s, watch);
  }
  int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&watch->poll, events, [](uv_poll_t* p, int status, int ev) {
    auto* w = static_cast<SocketWatch*>(p->data);
    int flags = status < 0 ? CURL_CSELECT_ERR : ((ev & UV_READABLE ? CURL_CSELECT_IN : 0) | (ev & UV_WRITABLE ? CURL_CSELECT_OUT : 0));
    w->client->drive(w->fd, flags);
  });
  return 0;
}

int DockerClient::on_timer(CURLM*, long timeout_ms, void* userp) {
  auto* self = static_cast<DockerClient*>(userp);
  if (timeout_ms < 0) {
    self->timer_.stop();
    return 0;
  }
  // Even a 0 ms timeout goes through the loop: callbacks never run inside request().
  self->timer_.start(uint64_t(timeout_ms));
  return 0;
}

void DockerClient::drive(curl_socket_t s, int events) {
  int running = 0;
  curl_multi_socket_action(multi_, s, events, &running);
  finish_done();
}

void DockerClient::finish_done() {
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL* easy = m->easy_handle;
    CURLcode code = m->data.result;
    auto it = transfers_.find(easy);
    std::unique_ptr<Transfer> t = std::move(it->second);
    transfers_.erase(it);
    Reply r;
    if (code == CURLE_OK) {
      long status = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
      r.status = int(status);
      r.body = std::move(t->response);
      if (!r.ok()) r.error = docker_message(r.body);
    } else {
      r.error = t->error[0] ? t->error : curl_easy_strerror(code);
    }
    curl_multi_remove_handle(multi_, easy);
    curl_easy_cleanup(easy);
    // Last: the callback may start new requests or even destroy things it owns. An exception
    // from it costs that one request (its caller's guard answers), not the loop.
    if (t->done) guarded("docker.reply", [&] { t->done(std::move(r)); });
  }
}

}  // namespace rx::hub
