#include "cli/hub_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rx::cli {

namespace {

size_t append_body(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Splits the streamed body into lines and hands each parsed one on.
struct LineSink {
  const std::function<void(const nlohmann::json&)>* on_line;
  std::string pending;
  std::string error_body;  // a non-200 answer is JSON, not lines
  long status = 0;
};

// An error answer is one JSON line; more than this is not one, and is not kept.
constexpr size_t kMaxErrorBody = 65536;
// Bigger than curl's 16 KiB default: a 1 GB transfer in fewer, larger reads and writes.
constexpr long kTransferBuffer = 256 * 1024;

// A streamed call's callbacks: the body as it comes, and a progress call at least once a second
// (where the caller may stop it), both given `ctx`.
void stream_callbacks(CURL* c, curl_write_callback write, curl_xferinfo_callback progress, void* ctx) {
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, ctx);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, ctx);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
}

}  // namespace

struct HubClient::Curl {
  CURL* easy = curl_easy_init();
  ~Curl() { curl_easy_cleanup(easy); }
};

HubClient::HubClient(Profile profile) : profile_(std::move(profile)), curl_(std::make_unique<Curl>()) {
  if (!curl_->easy) throw Failure("libcurl could not start");
}

HubClient::~HubClient() = default;

std::string HubClient::ws_url(const std::string& path) const {
  std::string base = profile_.hub;
  if (base.rfind("https://", 0) == 0) return "wss://" + base.substr(8) + path;
  return "ws://" + base.substr(7) + path;
}

void HubClient::fail_transport(int curl_code, long os_errno, const char* detail) const {
  std::string why = os_errno != 0 ? std::strerror(int(os_errno)) : (detail[0] ? detail : curl_easy_strerror(CURLcode(curl_code)));
  throw HubError("cannot reach the hub at " + profile_.hub + ": " + why, 0, "unreachable");
}

void HubClient::fail_status(long status, const std::string& body) const {
  auto j = nlohmann::json::parse(body, nullptr, false);
  std::string message = j.is_object() && j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
  std::string code = j.is_object() && j.contains("code") && j["code"].is_string() ? j["code"].get<std::string>() : "";
  if (status == 401)
    throw HubError("the hub " + profile_.hub + " refused the token (401" + (message.empty() ? "" : ": " + message) +
                       "); log in again with: rexec login " + profile_.hub,
                   status, code);
  if (message.empty()) message = "the hub answered HTTP " + std::to_string(status);
  else if (status == 403) message = "not allowed (403): " + message;
  throw HubError(message, status, code);
}

HubClient::Outcome HubClient::perform(const char* method, const std::string& path, const std::string* body,
                                      const char* accept, const std::function<void(CURL*)>& configure) {
  CURL* c = curl_->easy;
  curl_easy_reset(c);  // keeps the connection for the next call
  std::string url = profile_.hub + path;
  char errbuf[CURL_ERROR_SIZE] = {0};
  std::string auth = "Authorization: Bearer " + profile_.token;
  std::string accept_header = std::string("Accept: ") + accept;
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, curl_slist_free_all);
  for (const std::string* h : {&auth, &accept_header}) headers.reset(curl_slist_append(headers.release(), h->c_str()));
  if (body) headers.reset(curl_slist_append(headers.release(), "Content-Type: application/json"));
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, long(body->size()));
  }
  configure(c);
  Outcome o;
  o.rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &o.os_errno);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &o.status);
  o.error = errbuf;
  return o;
}

nlohmann::json HubClient::request(const char* method, const std::string& path, const std::string* body) {
  std::string response;
  auto o = perform(method, path, body, "application/json", [&response](CURL* c) {
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &response);
  });
  if (o.rc != CURLE_OK) fail_transport(o.rc, o.os_errno, o.error.c_str());
  if (o.status >= 400) fail_status(o.status, response);
  if (response.empty()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(response, nullptr, false);
  if (j.is_discarded()) throw HubError(profile_.hub + " did not answer with JSON (is it a Rexec hub?)", o.status, "bad_response");
  return j;
}

nlohmann::json HubClient::get(const std::string& path) { return request("GET", path, nullptr); }

nlohmann::json HubClient::post(const std::string& path, const nlohmann::json& body) {
  std::string text = body.dump();
  return request("POST", path, &text);
}

nlohmann::json HubClient::del(const std::string& path) { return request("DELETE", path, nullptr); }

bool HubClient::post_stream(const std::string& path, const nlohmann::json& body,
                            const std::function<void(const nlohmann::json&)>& on_line, const std::function<bool()>& stop) {
  std::string text = body.dump();
  LineSink sink{&on_line, {}, {}, 0};
  CURL* c = curl_->easy;
  struct Ctx {
    LineSink* sink;
    CURL* c;
    const std::function<bool()>* stop;
  } ctx{&sink, c, &stop};
  auto write = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* x = static_cast<Ctx*>(user);
    if (x->sink->status == 0) curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->sink->status);
    if (x->sink->status != 200) {
      if (x->sink->error_body.size() < kMaxErrorBody) x->sink->error_body.append(data, size * n);
      return size * n;
    }
    std::string& p = x->sink->pending;
    p.append(data, size * n);
    size_t start = 0;
    for (size_t nl; (nl = p.find('\n', start)) != std::string::npos; start = nl + 1) {
      auto j = nlohmann::json::parse(p.begin() + long(start), p.begin() + long(nl), nullptr, false);
      if (!j.is_discarded()) (*x->sink->on_line)(j);
    }
    p.erase(0, start);
    return size * n;
  };
  auto progress = +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
    auto* x = static_cast<Ctx*>(user);
    return (*x->stop)() ? 1 : 0;
  };
  auto o = perform("POST", path, &text, "application/x-ndjson",
                   [&](CURL* easy) { stream_callbacks(easy, write, progress, &ctx); });
  if (o.rc == CURLE_ABORTED_BY_CALLBACK) return false;
  if (o.rc != CURLE_OK) fail_transport(o.rc, o.os_errno, o.error.c_str());
  if (o.status >= 400) fail_status(o.status, sink.error_body);
  return true;
}

std::optional<nlohmann::json> HubClient::put_stream(const std::string& path, int fd, std::optional<uint64_t> size,
                                                    const std::string& source, const Progress& progress) {
  struct Ctx {
    int fd;
    const Progress* progress;
    uint64_t sent = 0, total = 0;
    int read_errno = 0;
    std::string response;
  } ctx{fd, &progress, 0, size.value_or(0), 0, {}};
  auto read = +[](char* buf, size_t size, size_t n, void* user) -> size_t {
    auto* x = static_cast<Ctx*>(user);
    for (;;) {
      ssize_t got = ::read(x->fd, buf, size * n);
      if (got >= 0) {
        x->sent += uint64_t(got);
        return size_t(got);  // 0: the end of a chunked body
      }
      // A signal while a pipe blocks: ask whether to go on, since curl cannot while we wait here.
      if (errno == EINTR && (*x->progress)(x->sent, x->total)) continue;
      if (errno != EINTR) x->read_errno = errno;
      return CURL_READFUNC_ABORT;
    }
  };
  auto write = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* x = static_cast<Ctx*>(user);
    if (x->response.size() < kMaxErrorBody) x->response.append(data, size * n);
    return size * n;
  };
  auto xfer = +[](void* user, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) -> int {
    auto* x = static_cast<Ctx*>(user);
    return (*x->progress)(uint64_t(ulnow), uint64_t(ultotal)) ? 0 : 1;
  };
  auto o = perform("PUT", path, nullptr, "application/json", [&](CURL* c) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read);
    curl_easy_setopt(c, CURLOPT_READDATA, &ctx);
    if (size) curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, curl_off_t(*size));
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kTransferBuffer);
    stream_callbacks(c, write, xfer, &ctx);
  });
  if (ctx.read_errno) throw Failure("cannot read " + source + ": " + std::strerror(ctx.read_errno));
  if (o.rc == CURLE_ABORTED_BY_CALLBACK) return std::nullopt;
  // A hub that refuses early (exists, too_large) may close while the body is still going: its
  // answer, when it came, says more than the broken pipe.
  if (o.status >= 400 && (o.rc == CURLE_OK || !ctx.response.empty())) fail_status(o.status, ctx.response);
  if (o.rc != CURLE_OK) fail_transport(o.rc, o.os_errno, o.error.c_str());
  auto j = nlohmann::json::parse(ctx.response, nullptr, false);
  if (j.is_discarded()) throw HubError(profile_.hub + " did not answer with JSON (is it a Rexec hub?)", o.status, "bad_response");
  return j;
}

bool HubClient::get_stream(const std::string& path, const std::function<bool(const char*, size_t)>& sink,
                           const Progress& progress) {
  struct Ctx {
    const std::function<bool(const char*, size_t)>* sink;
    const Progress* progress;
    CURL* c;
    long status = 0;
    bool sink_failed = false;
    std::string error_body;
  } ctx{&sink, &progress, curl_->easy, 0, false, {}};
  auto write = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* x = static_cast<Ctx*>(user);
    if (x->status == 0) curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status < 200 || x->status >= 300) {  // the error's JSON, not the file
      if (x->error_body.size() < kMaxErrorBody) x->error_body.append(data, size * n);
      return size * n;
    }
    if ((*x->sink)(data, size * n)) return size * n;
    x->sink_failed = true;
    return CURL_WRITEFUNC_ERROR;
  };
  auto xfer = +[](void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) -> int {
    auto* x = static_cast<Ctx*>(user);
    long status = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
    bool file = status >= 200 && status < 300;  // not an error answer's few bytes
    return (*x->progress)(file ? uint64_t(dlnow) : 0, file ? uint64_t(dltotal) : 0) ? 0 : 1;
  };
  auto o = perform("GET", path, nullptr, "*/*", [&](CURL* c) {
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, kTransferBuffer);
    stream_callbacks(c, write, xfer, &ctx);
  });
  if (o.rc == CURLE_ABORTED_BY_CALLBACK || (o.rc == CURLE_WRITE_ERROR && ctx.sink_failed)) return false;
  if (o.status >= 400) fail_status(o.status, ctx.error_body);
  if (o.rc == CURLE_PARTIAL_FILE) {
    curl_off_t got = 0, want = 0;
    curl_easy_getinfo(curl_->easy, CURLINFO_SIZE_DOWNLOAD_T, &got);
    curl_easy_getinfo(curl_->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &want);
    throw HubError("the download was cut short: " + std::to_string(got) + " of " + std::to_string(want) +
                       " bytes came (did the file shrink while it was read?)",
                   o.status, "partial");
  }
  if (o.rc != CURLE_OK) fail_transport(o.rc, o.os_errno, o.error.c_str());
  return true;
}

}  // namespace rx::cli
