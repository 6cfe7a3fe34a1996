// ViewerLink over libwebsockets 4.1 on a foreign libuv loop. One lws context per link, created
// with the link and kept across reconnects; one client wsi at a time. Teardown is in two halves
// because lws closes its uv handles asynchronously: the first lws_context_destroy() starts the
// closes, the loop runs their callbacks, the second frees the context (see ~Impl).
#include "cli/viewer_link.h"

#include <libwebsockets.h>  // after uv.h (viewer_link.h): its libuv glue needs the uv types

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "cli/failure.h"
#include "protocol/limits.h"
#include "protocol/viewer.h"

namespace rx::cli {

namespace viewer = protocol::viewer;

namespace {

constexpr const char* kProtocol = "rexec.term.v1";
// A hub message is at most kMaxViewerMessage + 16 bytes; lws may still hand it over in pieces.
constexpr size_t kMaxIncoming = protocol::kMaxViewerMessage + 1024;
// Input waiting for the socket: a long paste, not a flood without end.
constexpr size_t kMaxQueuedBytes = 8 * 1024 * 1024;
// Turns of the loop the destructor may spend letting lws close its handles.
constexpr int kTeardownTurns = 1000;

// The hub's answer before an upgrade, as one line (the body, which has the hub's own words, is
// not seen by lws; callers that want them ask the REST API).
std::string refusal(long status) {
  switch (status) {
    case 400: return "bad request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "no such terminal, or it has no live session";
    case 429: return "rate limited";
    case 503: return "the hub is unavailable";
    default: return "the hub answered HTTP " + std::to_string(status) + " instead of a WebSocket";
  }
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

struct ViewerLink::Impl {
  uv_loop_t* loop;
  Profile hub;
  std::string terminal_id;
  Handlers handlers;

  // Where to connect, from the hub's URL.
  bool tls = false;
  std::string address, host_header, prefix;
  int port = 0;
  std::string path;  // of the current attempt

  std::vector<lws_protocols> protocols;
  lws_retry_bo_t retry{};
  lws_context* context = nullptr;  // nulled by lws when the second destroy has freed it
  lws* wsi = nullptr;              // the socket, connecting or open
  bool open = false;               // upgraded
  bool close_wanted = false;
  bool dying = false;  // in the destructor: no more handlers
  std::deque<std::vector<uint8_t>> queue;  // messages with LWS_PRE headroom
  size_t queued_bytes = 0;
  std::vector<uint8_t> partial;  // a message arriving in fragments
  int peer_close_code = 0;       // from the hub's close frame, if one came
  std::string peer_close_reason;
  uint64_t closes = 0;           // on_closed reports so far

  Impl(uv_loop_t* l, Profile p, std::string id, Handlers h)
      : loop(l), hub(std::move(p)), terminal_id(std::move(id)), handlers(std::move(h)) {
    parse_hub();
    protocols = {{kProtocol, &Impl::callback, 0, kMaxIncoming, 0, nullptr, 0}, {nullptr, nullptr, 0, 0, 0, nullptr, 0}};
    // Heartbeats like the agent's (SPEC 1.8): a route that silently died is noticed within 30 s.
    retry.secs_since_valid_ping = 20;
    retry.secs_since_valid_hangup = 30;

    lws_context_creation_info info;
    std::memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols.data();
    info.user = this;
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    void* loops[1] = {loop};
    info.foreign_loops = loops;
    info.pcontext = &context;
    // The system's CAs; SSL_CERT_FILE names another bundle (a private CA), as for curl.
    const char* ca = std::getenv("SSL_CERT_FILE");
    if (tls && ca && *ca) info.client_ssl_ca_filepath = ca;
    // lws's own log lines would land in the middle of the user's screen.
    lws_set_log_level(std::getenv("REXEC_LWS_DEBUG") ? (LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO | LLL_CLIENT) : 0,
                      [](int, const char* line) { std::fprintf(stderr, "lws: %s", line); });
    context = lws_create_context(&info);
    if (!context)
      throw Failure("cannot start libwebsockets on libuv (is the libwebsockets-evlib-uv package installed?)");
  }

  ~Impl() {
    dying = true;
    if (!context) return;
    // First half: close every socket and start closing lws's uv handles.
    lws_context_destroy(context);
    // Let the loop run their close callbacks (we are not inside a callback of this loop: see the
    // header), then the second half frees the context.
    for (int turn = 0; turn < kTeardownTurns && context && lws_handles_left(); ++turn) uv_run(loop, UV_RUN_NOWAIT);
    if (context && !lws_handles_left()) lws_context_destroy(context);
    // Otherwise lws still owns handles on the loop: leaking the context beats freeing it under them.
  }

  // lws marks its static handles (timer, idle) with the context; they close after every socket.
  bool lws_handles_left() {
    struct Probe {
      void* context;
      bool found = false;
    } probe{context};
    uv_walk(loop, [](uv_handle_t* h, void* arg) {
      auto* p = static_cast<Probe*>(arg);
      if (h->data == p->context) p->found = true;
    }, &probe);
    return probe.found;
  }

  void parse_hub() {
    std::string u = hub.hub;
    if (u.rfind("https://", 0) == 0) {
      tls = true;
      u = u.substr(8);
    } else if (u.rfind("http://", 0) == 0) {
      u = u.substr(7);
    } else {
      throw Failure("bad hub URL '" + hub.hub + "': expected http://HOST[:PORT] or https://HOST[:PORT]");
    }
    auto slash = u.find('/');
    if (slash != std::string::npos) {
      prefix = u.substr(slash);
      while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
      u = u.substr(0, slash);
    }
    port = tls ? 443 : 80;
    host_header = u;
    auto colon = u.rfind(':');
    if (colon != std::string::npos && u.find(']', colon) == std::string::npos) {
      port = std::atoi(u.c_str() + colon + 1);
      u = u.substr(0, colon);
    }
    if (u.size() > 2 && u.front() == '[' && u.back() == ']') u = u.substr(1, u.size() - 2);
    address = u;
    if (address.empty() || port <= 0 || port > 65535) throw Failure("bad hub URL '" + hub.hub + "'");
  }

  void connect(std::optional<uint64_t> since) {
    if (wsi || !context) return;
    path = prefix + "/api/v1/terminals/" + percent_encode(terminal_id) + "/attach";
    if (since) path += "?since=" + std::to_string(*since);
    open = false;
    close_wanted = false;
    partial.clear();
    peer_close_code = 0;
    peer_close_reason.clear();
    lws_client_connect_info ci;
    std::memset(&ci, 0, sizeof(ci));
    ci.context = context;
    ci.address = address.c_str();
    ci.port = port;
    ci.path = path.c_str();
    ci.host = host_header.c_str();
    ci.origin = host_header.c_str();
    ci.protocol = kProtocol;
    ci.local_protocol_name = kProtocol;
    ci.alpn = "http/1.1";
    ci.ssl_connection = (tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
    ci.retry_and_idle_policy = &retry;
    ci.pwsi = &wsi;
    uint64_t before = closes;
    if (!lws_client_connect_via_info(&ci)) {
      wsi = nullptr;
      // No socket to report on later: say so now (unless lws already did), as a failed connection.
      if (closes == before) closed(0, "cannot connect to " + hub.hub, 0);
    }
  }

  void closed(int code, const std::string& reason, long http_status) {
    ++closes;
    wsi = nullptr;
    open = false;
    close_wanted = false;
    queue.clear();
    queued_bytes = 0;
    partial.clear();
    if (!dying && handlers.on_closed) handlers.on_closed(code, reason, http_status);
  }

  bool enqueue(std::vector<uint8_t> message, bool is_resize) {
    if (!open || !wsi || close_wanted) return false;
    if (queued_bytes + message.size() > kMaxQueuedBytes) return false;
    if (is_resize) {
      // Only the latest size matters: replace a resize still waiting.
      for (auto& m : queue)
        if (m.size() == LWS_PRE + 5 && m[LWS_PRE] == viewer::kResize) {
          m = std::move(message);
          return true;
        }
    }
    queued_bytes += message.size();
    queue.push_back(std::move(message));
    lws_callback_on_writable(wsi);
    return true;
  }

  void receive(const void* in, size_t len) {
    const auto* bytes = static_cast<const uint8_t*>(in);
    if (lws_is_first_fragment(wsi)) partial.clear();
    if (partial.size() + len > kMaxIncoming) {
      partial.clear();
      return;  // over the spec's bound: not a message of this protocol
    }
    partial.insert(partial.end(), bytes, bytes + len);
    if (!lws_is_final_fragment(wsi)) return;
    if (!lws_frame_is_binary(wsi)) return partial.clear();
    auto message = std::move(partial);
    partial.clear();
    auto decoded = viewer::decode_server(message);
    if (!decoded || dying) return;
    if (auto* o = std::get_if<viewer::Output>(&*decoded)) {
      if (handlers.on_output) handlers.on_output(o->offset, o->bytes);
    } else if (auto* e = std::get_if<viewer::Event>(&*decoded)) {
      auto j = nlohmann::json::parse(e->json, nullptr, false);
      if (j.is_object() && handlers.on_event) handlers.on_event(j);
    }
  }

  std::string connect_error(lws* w, const void* in) {
    std::string why = in ? static_cast<const char*>(in) : "connection failed";
    // lws reports a refused certificate as an opaque "SSL err": ask OpenSSL what it decided.
    if (SSL* ssl = tls ? lws_get_ssl(w) : nullptr) {
      long verdict = SSL_get_verify_result(ssl);
      if (verdict != X509_V_OK)
        why = std::string("the hub's certificate was refused: ") + X509_verify_cert_error_string(verdict) +
              " (checked against " + (std::getenv("SSL_CERT_FILE") ? std::getenv("SSL_CERT_FILE") : "the system CAs") +
              ")";
    }
    return "cannot attach at " + hub.hub + ": " + why;
  }

  int on_callback(lws* w, lws_callback_reasons reason, void* in, size_t len) {
    switch (reason) {
      case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        auto** p = static_cast<unsigned char**>(in);
        unsigned char* end = *p + len;
        std::string auth = "Bearer " + hub.token;
        if (lws_add_http_header_by_token(w, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         reinterpret_cast<const unsigned char*>(auth.c_str()), int(auth.size()), p, end))
          return -1;
        return 0;
      }
      case LWS_CALLBACK_CLIENT_ESTABLISHED:
        wsi = w;
        open = true;
        if (!dying && handlers.on_open) handlers.on_open();
        return 0;
      case LWS_CALLBACK_CLIENT_RECEIVE:
        if (w == wsi) receive(in, len);
        return 0;
      case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (w != wsi) return 0;
        if (close_wanted) {
          lws_close_reason(w, LWS_CLOSE_STATUS_NORMAL, nullptr, 0);
          return -1;
        }
        if (queue.empty()) return 0;
        auto message = std::move(queue.front());
        queue.pop_front();
        queued_bytes -= message.size();
        size_t n = message.size() - LWS_PRE;
        if (lws_write(w, message.data() + LWS_PRE, n, LWS_WRITE_BINARY) < int(n)) return -1;
        if (!queue.empty()) lws_callback_on_writable(w);
        return 0;
      }
      case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        const auto* b = static_cast<const uint8_t*>(in);
        peer_close_code = len >= 2 ? int((b[0] << 8) | b[1]) : 1005;
        peer_close_reason = len > 2 ? std::string(reinterpret_cast<const char*>(b + 2), len - 2) : "";
        return 0;
      }
      case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (w != wsi && wsi) return 0;  // not ours (an attempt we already gave up)
        long status = lws_http_client_http_response(w);
        if (status >= 300 && status != 101) closed(0, refusal(status), status);
        else closed(0, connect_error(w, in), 0);
        return 0;
      }
      case LWS_CALLBACK_CLIENT_CLOSED: {
        if (w != wsi) return 0;
        // A hub may reset the connection right after its close frame: the frame is what counts.
        if (peer_close_code) closed(peer_close_code, peer_close_reason, 0);
        else if (close_wanted) closed(LWS_CLOSE_STATUS_NORMAL, "", 0);  // our goodbye, answered
        else closed(0, "the connection to " + hub.hub + " was cut", 0);
        return 0;
      }
      case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
      case LWS_CALLBACK_WSI_DESTROY:
        // A connection the hub (or a proxy) dropped after our request and before its answer
        // gets neither of the above from lws 4.1: its end is reported here instead.
        if (w == wsi) closed(0, "the connection to " + hub.hub + " closed before the upgrade", 0);
        return 0;
      default:
        return 0;
    }
  }

  static int callback(lws* w, lws_callback_reasons reason, void* user, void* in, size_t len) {
    (void)user;
    auto* self = static_cast<Impl*>(lws_context_user(lws_get_context(w)));
    if (!self) return 0;
    // Nothing may throw through lws (C): a handler's exception ends this socket, not the process.
    try {
      return self->on_callback(w, reason, in, len);
    } catch (...) {
      return -1;
    }
  }
};

ViewerLink::ViewerLink(uv_loop_t* loop, Profile hub, std::string terminal_id, Handlers handlers)
    : impl_(std::make_unique<Impl>(loop, std::move(hub), std::move(terminal_id), std::move(handlers))) {}

ViewerLink::~ViewerLink() = default;

void ViewerLink::open(std::optional<uint64_t> since) { impl_->connect(since); }

bool ViewerLink::send_input(std::span<const uint8_t> bytes) {
  if (!is_open()) return false;
  // A client message is at most kMaxViewerMessage bytes, opcode included: cut longer pastes.
  constexpr size_t kPiece = protocol::kMaxViewerMessage - 1;
  for (size_t at = 0; at < bytes.size(); at += kPiece) {
    auto piece = bytes.subspan(at, std::min(kPiece, bytes.size() - at));
    if (!impl_->enqueue(viewer::encode_input(piece, LWS_PRE), false)) return false;
  }
  return true;
}

bool ViewerLink::send_resize(uint16_t cols, uint16_t rows) {
  if (cols == 0 || rows == 0) return false;
  return impl_->enqueue(viewer::encode_resize(cols, rows, LWS_PRE), true);
}

void ViewerLink::close() {
  if (!impl_->wsi) return;
  if (impl_->open) {
    impl_->close_wanted = true;
    lws_callback_on_writable(impl_->wsi);
  } else {
    // Still connecting: nothing to say goodbye on; have lws drop it (on_closed follows).
    lws_set_timeout(impl_->wsi, static_cast<pending_timeout>(1), LWS_TO_KILL_ASYNC);
  }
}

bool ViewerLink::is_open() const { return impl_->open && impl_->wsi && !impl_->close_wanted; }

}  // namespace rx::cli
