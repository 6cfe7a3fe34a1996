#include "agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "protocol/log_line.h"
#include "agent/secrets.h"
#include "protocol/codec.h"
#include "protocol/limits.h"
#include "protocol/version.h"

namespace rx::agent {

static_assert(LWS_PRE >= kMaxClientHeader, "our WebSocket header goes in the lws headroom");

using namespace protocol;

namespace {
constexpr const char* kLinkProtocol = "rexec.agent.v1";
constexpr const char* kVersion = kRexecVersion;
constexpr lws_usec_t kStatsInterval = 5 * LWS_US_PER_SEC;
// Housekeeping (EXIT grace, CLOSE after the last ACK, watchdog). Not faster: lws wakes a few
// hundred microseconds early for each timer and spins until it is due.
constexpr lws_usec_t kTickInterval = 250 * LWS_USEC_PER_SEC / 1000;
}  // namespace

Agent::Agent(AgentOptions options) : options_(std::move(options)), sampler_(options_.host, options_.channels.user_map.users_by_account()) {}

Result<std::unique_ptr<Agent>> Agent::create(AgentOptions options, InheritedFds inherited) {
  std::unique_ptr<Agent> a(new Agent(std::move(options)));
  // --hub: ws://host[:port], wss://host[:port], or a unix socket path (container agents).
  std::string hub = a->options_.hub;
  while (!hub.empty() && hub.back() == '/') hub.pop_back();
  if (hub.starts_with("unix:")) hub = hub.substr(5);
  if (hub.starts_with("/")) {
    a->address_ = "+" + hub;
    a->host_header_ = "localhost";
  } else {
    bool tls = hub.starts_with("wss://");
    if (!tls && !hub.starts_with("ws://"))
      return make_error("bad_hub", "--hub must be ws://HOST:PORT, wss://HOST:PORT or a unix socket path");
    hub = hub.substr(tls ? 6 : 5);
    a->tls_ = tls;
    a->port_ = tls ? 443 : 80;
    auto colon = hub.rfind(':');
    if (colon != std::string::npos && hub.find(']', colon) == std::string::npos) {
      a->port_ = std::atoi(hub.c_str() + colon + 1);
      hub = hub.substr(0, colon);
    }
    a->host_header_ = hub;
    if (hub.size() > 2 && hub.front() == '[') hub = hub.substr(1, hub.size() - 2);
    a->address_ = hub;
    if (a->address_.empty() || a->port_ <= 0) return make_error("bad_hub", "cannot parse --hub " + a->options_.hub);
  }

  a->protocols_ = {{kLinkProtocol, &Agent::callback, 0, kMaxFrameBytes + 1024, 0, nullptr, 0},
                   {kFdProtocol, &Agent::callback, 0, 0, 0, nullptr, 0},
                   {nullptr, nullptr, 0, 0, 0, nullptr, 0}};
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof(info));
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = a->protocols_.data();
  info.user = a.get();
  // OpenSSL is initialised only for wss://: on a plain link it would cost memory for nothing.
  if (a->options_.hub.starts_with("wss://")) info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  // lws reads the socket into this buffer: the 4 KiB default would cut every 64 KiB frame into
  // 16 reads and 16 callbacks.
  info.pt_serv_buf_size = 128 * 1024;
  if (!a->options_.ca_file.empty()) info.client_ssl_ca_filepath = a->options_.ca_file.c_str();
  a->context_ = lws_create_context(&info);
  if (!a->context_) return make_error("lws_failed", "cannot create the libwebsockets context");
  a->vhost_ = lws_get_vhost_by_name(a->context_, "default");
  // Heartbeats (SPEC 1.8): ping after 20 s of silence, give the link up after 30 s.
  a->retry_.secs_since_valid_ping = 20;
  a->retry_.secs_since_valid_hangup = 30;

  // SIGTERM/SIGINT arrive as a readable signalfd on the loop: no handler, no global flag.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);  // upgrade in place
  sigprocmask(SIG_BLOCK, &set, nullptr);
  a->signal_fd_ = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  a->watch(a->signals_.in, 0, Watch::kSignal, a->signal_fd_);
  ::signal(SIGPIPE, SIG_IGN);
  a->adopt_channels(inherited);
  return a;
}

Agent::~Agent() {
  for (auto& [id, w] : watches_) {
    unwatch(w.out);
    unwatch(w.err);
    unwatch(w.in);
    unwatch(w.pid);
  }
  unwatch(signals_.in);
  channels_.clear();  // hangs up and reaps every child
  if (context_) lws_context_destroy(context_);
  if (signal_fd_ >= 0) ::close(signal_fd_);
}

void Agent::arm(Timer& t, void (Agent::*fn)(), lws_usec_t us) {
  t.self = this;
  timer_fns_[&t] = fn;
  lws_sul_schedule(context_, 0, &t.sul, [](lws_sorted_usec_list_t* s) {
    auto* timer = reinterpret_cast<Timer*>(s);
    (timer->self->*(timer->self->timer_fns_[timer]))();
  }, us);
}

int Agent::run() {
  log("info", "agent.start", {{"version", kVersion}, {"hub", options_.hub}, {"name", options_.name}});
  status("connecting to " + options_.hub);
  connect();
  arm(stats_timer_, &Agent::stats, kStatsInterval);
  arm(tick_timer_, &Agent::tick, kTickInterval);
  while (!stopping_) {
    if (lws_service(context_, 0) < 0) break;
    rearm_input();
    if (upgrade_requested_) {
      upgrade_requested_ = false;
      upgrade_in_place();
    }
  }
  // Under systemd a stop may be a restart (an upgrade): the next agent of the unit gets the
  // terminals from the fd store. A real stop makes systemd close them, which hangs them up.
  if (exit_code_ == 0 && notifier_.enabled()) hand_over_to_systemd();
  notifier_.send("STOPPING=1");
  log("info", "agent.stop", {{"code", std::to_string(exit_code_)}});
  return exit_code_;
}

// ---- the link ---------------------------------------------------------------------------------

void Agent::connect() {
  if (stopping_ || link_) return;
  lws_client_connect_info ci;
  std::memset(&ci, 0, sizeof(ci));
  ci.context = context_;
  ci.address = address_.c_str();
  ci.port = port_;
  ci.path = "/api/v1/agent/connect";
  ci.host = host_header_.c_str();
  ci.origin = host_header_.c_str();
  ci.protocol = kLinkProtocol;
  ci.local_protocol_name = kLinkProtocol;
  ci.ssl_connection = tls_ ? LCCSCF_USE_SSL : 0;
  ci.retry_and_idle_policy = &retry_;
  ci.pwsi = &link_;
  if (!lws_client_connect_via_info(&ci)) {
    link_ = nullptr;
    schedule_reconnect();
  }
}

void Agent::schedule_reconnect() {
  if (stopping_) return;
  auto delay = Channel::Clock::now() < restart_until_ ? std::chrono::milliseconds(150 + std::rand() % 200) : backoff_.next();
  log("info", "link.retry", {{"in_ms", std::to_string(delay.count())}, {"attempt", std::to_string(backoff_.attempt())}});
  arm(reconnect_timer_, &Agent::connect, lws_usec_t(delay.count()) * 1000);
}

void Agent::link_down(const std::string& why) {
  bool was_up = welcomed_;
  link_ = nullptr;
  welcomed_ = false;
  partial_.clear();
  control_.clear();  // per-link: everything in it is re-derived on the next WELCOME
  for (auto& [id, ch] : channels_) ch->rewind_input_acks();
  if (was_up) log("warn", "link.down", {{"reason", why}});
  status("disconnected: " + why);
  schedule_reconnect();
}

int Agent::callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* self = static_cast<Agent*>(lws_context_user(lws_get_context(wsi)));
  const lws_protocols* p = lws_get_protocol(wsi);
  if (!self || !p || !p->name) return 0;
  (void)user;
  bool data = reason == LWS_CALLBACK_CLIENT_RECEIVE || reason == LWS_CALLBACK_RAW_RX_FILE ||
              reason == LWS_CALLBACK_RAW_WRITEABLE_FILE;
  bool outer = self->deferring_;  // lws may call back from inside a callback: the outermost writes
  self->deferring_ = outer || data;
  int rc = std::strcmp(p->name, kFdProtocol) == 0 ? self->on_fd(wsi, reason) : self->on_link(wsi, reason, in, len);
  self->deferring_ = outer;
  if (outer || !self->write_due_) return rc;
  if (rc == 0) {
    self->write_due();
  } else {  // the connection is going: leave it to lws
    self->write_due_ = false;
    if (self->link_) lws_callback_on_writable(self->link_);
  }
  return rc;
}

int Agent::on_link(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
      auto** p = static_cast<unsigned char**>(in);
      unsigned char* end = *p + len;
      std::string auth = "Bearer " + options_.token;
      if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                       reinterpret_cast<const unsigned char*>(auth.c_str()), int(auth.size()), p, end))
        return -1;
      if (!options_.name.empty() &&
          lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>("x-rexec-agent-name:"),
                                      reinterpret_cast<const unsigned char*>(options_.name.c_str()),
                                      int(options_.name.size()), p, end))
        return -1;
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED: {
      link_ = wsi;
      Hello h;
      h.proto_min = kProtocolVersionMin;
      h.proto_max = kProtocolVersionMax;
      h.agent_version = kVersion;
      h.capabilities = {"pty", "exec", "file"};  // "file": FILE frames (an older agent ignores them)
      h.labels = options_.labels;
      h.host = collect_host_info(options_.host);
      h.host.gpu_policy = options_.channels.gpu_policy;
      if (!h.host.gpus.empty()) h.capabilities.push_back("gpu");
      for (const auto& [id, ch] : channels_) h.channels.push_back({id, ch->input_received()});
      send_control(h);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      const auto* bytes = static_cast<const uint8_t*>(in);
      if (lws_is_first_fragment(wsi)) partial_.clear();
      if (partial_.size() + len > kMaxFrameBytes) {
        log("error", "link.frame_too_large", {{"bytes", std::to_string(partial_.size() + len)}});
        return -1;
      }
      partial_.insert(partial_.end(), bytes, bytes + len);
      if (!lws_is_final_fragment(wsi)) return 0;
      auto frame = decode(partial_);
      partial_.clear();
      if (!frame) {
        // A hub bug or an impostor: say why and reconnect.
        log("error", "link.bad_frame", {{"code", frame.error().code}, {"reason", frame.error().message}});
        return -1;
      }
      on_frame(*frame);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      if (write_next()) lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      const auto* b = static_cast<const uint8_t*>(in);
      uint16_t code = len >= 2 ? uint16_t((b[0] << 8) | b[1]) : 1005;
      std::string why = len > 2 ? std::string(reinterpret_cast<const char*>(b + 2), len - 2) : "";
      log(code == 1000 || code == 4012 ? "info" : "warn", "link.closed_by_hub",
          {{"code", std::to_string(code)}, {"reason", why}});
      if (code == 1008 && why == "revoked") {
        log("error", "agent.revoked", {{"hint", "this agent's credential was revoked on the hub; enroll it again"}});
        exit_code_ = 3;
        stopping_ = true;
      }
      // The hub is restarting: knock every ~250 ms for a while instead of backing off, so the
      // terminals are back within moments of the hub.
      if (code == 4012) restart_until_ = Channel::Clock::now() + std::chrono::seconds(30);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      std::string reason = in ? static_cast<const char*>(in) : "connect failed";
      // lws reports a refused certificate as an opaque "SSL err 1": ask OpenSSL what it decided.
      if (SSL* ssl = tls_ ? lws_get_ssl(wsi) : nullptr) {
        long verdict = SSL_get_verify_result(ssl);
        if (verdict != X509_V_OK)
          reason = std::string("the hub's certificate was refused: ") + X509_verify_cert_error_string(verdict) +
                   (options_.ca_file.empty() ? " (checked against the system CAs; --ca-file names another)"
                                             : " (checked against " + options_.ca_file + ")");
      }
      log("warn", "link.connect_failed", {{"hub", options_.hub}, {"reason", reason}});
      link_down(reason);
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      link_down("closed");
      return 0;
    default:
      return 0;
  }
}

bool Agent::has_data() const {
  if (!welcomed_) return false;
  for (const auto& [id, ch] : channels_)
    if (ch->has_frame()) return true;
  return false;
}

void Agent::send_control(const Frame& frame) {
  auto bytes = encode(frame, LWS_PRE);
  if (!bytes) {  // the hub would refuse it (and drop the link): say why here instead
    log("error", "link.frame_refused", {{"code", bytes.error().code}, {"reason", bytes.error().message}});
    return;
  }
  control_.push_back(std::move(bytes).value());
  want_write();
}

void Agent::want_write() {
  if (!link_) return;
  // Inside the callbacks that carry a keystroke or its echo, write when the callback ends
  // (write_due()); elsewhere wait for lws's writable callback.
  if (deferring_) write_due_ = true;
  else lws_callback_on_writable(link_);
}

void Agent::write_due() {
  // The write lws would have offered one poll round later, done now: on the echo path that
  // round is a poll() per hop. A full socket still waits for lws.
  if (!write_due_) return;
  write_due_ = false;
  if (!link_) return;
  if (lws_send_pipe_choked(link_) || write_next()) lws_callback_on_writable(link_);
}

bool Agent::write_next() {
  // Several frames per writable callback while the socket takes them: an ACK and the echo it
  // accompanies leave together instead of a poll round apart.
  for (int budget = 16; budget > 0 && link_; --budget) {
    std::vector<uint8_t> frame;
    if (!control_.empty()) {
      frame = std::move(control_.front());
      control_.pop_front();
    } else if (welcomed_ && !channels_.empty()) {
      // Round-robin over channels, one chunk each: a flooding terminal gets one 64 KiB frame
      // between another terminal's keystroke echoes, never a queue of them.
      auto it = channels_.upper_bound(rr_next_);
      for (size_t i = 0; i < channels_.size() && frame.empty(); ++i, ++it) {
        if (it == channels_.end()) it = channels_.begin();
        if (auto f = it->second->next_frame(kMaxChunk, LWS_PRE)) {
          frame = std::move(*f);
          rr_next_ = it->first;
        }
      }
    }
    if (frame.empty()) return false;
    // Framed and masked here (see ws_frame.h); lws sends the bytes as they are.
    auto out = framer_.frame(std::span(frame).subspan(LWS_PRE), LWS_PRE);
    if (out.empty() || lws_write(link_, out.data(), out.size(), LWS_WRITE_RAW) < int(out.size())) return false;
    if (control_.empty() && !has_data()) return false;  // all sent (checked before the choked() syscall)
    if (lws_send_pipe_choked(link_)) return true;         // come back when the socket drains
  }
  return true;
}

// ---- frames from the hub ----------------------------------------------------------------------

void Agent::on_frame(const Frame& frame) {
  if (auto* w = std::get_if<Welcome>(&frame)) return on_welcome(*w);
  if (!welcomed_) return;
  if (auto* o = std::get_if<Open>(&frame)) return open_channel(*o);
  if (auto* f = std::get_if<FileOpen>(&frame)) return open_file_channel(*f);
  uint32_t id = frame_channel(frame);
  auto it = channels_.find(id);
  if (auto* c = std::get_if<Close>(&frame)) {
    if (it != channels_.end()) {
      bool answer = it->second->is_file();
      close_channel(id);  // hangs the child up and reaps it: a put removes its temporary file first
      // Answered only once the child is gone, so the hub can tell its client that nothing was
      // left behind (SPEC 1.10); pty and exec channels are forgotten without a word.
      if (answer) send_control(Close{id, "cancelled"});
    }
    (void)c;
    return;
  }
  if (auto* e = std::get_if<ErrorFrame>(&frame)) {
    log("warn", "hub.error", {{"channel", std::to_string(id)}, {"code", e->code}, {"message", e->message}});
    return;
  }
  if (std::holds_alternative<Unknown>(frame)) return;  // a newer hub: ignore what we do not know
  if (it == channels_.end()) {
    send_control(ErrorFrame{id, "unknown_channel", "channel " + std::to_string(id) + " is not open"});
    return;
  }
  Channel& ch = *it->second;
  if (auto* d = std::get_if<Data>(&frame)) {
    if (d->stream == Stream::kInput) {
      ch.on_input(d->offset, d->bytes);
      // The tty echoes while we write: read it now rather than one poll round later.
      if (ch.kind() == ChannelKind::kPty && ch.wants_read(Stream::kOutput)) ch.read_output(Stream::kOutput);
    }
  } else if (auto* a = std::get_if<Ack>(&frame)) {
    ch.on_ack(a->stream, a->offset);
  } else if (auto* r = std::get_if<Resize>(&frame)) {
    ch.resize(r->cols, r->rows);
  } else if (auto* s = std::get_if<Signal>(&frame)) {
    if (auto st = ch.signal(s->name); !st) send_control(ErrorFrame{id, st.error().code, st.error().message});
  }
  service(id);
}

void Agent::on_welcome(const Welcome& w) {
  if (w.credential) {
    options_.token = *w.credential;
    if (auto s = write_secret(options_.credential_file, *w.credential); !s)
      log("error", "agent.credential_not_saved", {{"file", options_.credential_file}, {"reason", s.error().message}});
    else
      log("info", "agent.enrolled", {{"agent", w.agent_id}, {"credential_file", options_.credential_file}});
  }
  for (auto& [id, ch] : channels_) {
    if (auto e = ch->sent_exit()) send_control(*e);  // the old link may have lost it
    for (Stream s : {Stream::kOutput, Stream::kStderr}) {
      std::optional<uint64_t> received;
      for (const auto& r : w.resume)
        if (r.channel == id && r.stream == s) received = r.received;
      ch->resume(s, received);
    }
  }
  welcomed_ = true;
  backoff_.reset();
  restart_until_ = {};
  log("info", "link.up", {{"agent", w.agent_id}, {"hub_version", w.hub_version}, {"channels", std::to_string(channels_.size())}});
  status("connected to " + options_.hub);
  if (!ready_sent_) {
    notifier_.send("READY=1");
    ready_sent_ = true;
  }
  for (auto& [id, ch] : channels_) service(id);
  want_write();
}

void Agent::open_channel(const Open& o) {
  start_channel(o.channel, channel_kind_name(o.kind), "", [&] { return Channel::open(o, options_.channels); });
}

void Agent::open_file_channel(const FileOpen& f) {
  // Logged without the path: that is the user's business (the hub's audit log has it).
  start_channel(f.channel, "file", f.op, [&] { return Channel::open(f, options_.channels); });
}

void Agent::start_channel(uint32_t id, std::string_view kind, std::string_view op,
                          const std::function<Result<std::unique_ptr<Channel>>()>& open) {
  if (channels_.count(id)) {
    send_control(ErrorFrame{id, "channel_exists", "channel " + std::to_string(id) + " is already open"});
    return;
  }
  auto ch = open();
  if (!ch) {
    log("warn", "channel.spawn_failed", {{"channel", std::to_string(id)}, {"reason", ch.error().message}});
    send_control(ErrorFrame{id, ch.error().code, ch.error().message});
    send_control(Close{id, "could not start"});
    return;
  }
  send_control(Opened{id, uint32_t((*ch)->pid())});
  std::string channel = std::to_string(id), pid = std::to_string((*ch)->pid());
  if (op.empty()) log("info", "channel.open", {{"channel", channel}, {"kind", kind}, {"pid", pid}});
  else log("info", "channel.open", {{"channel", channel}, {"kind", kind}, {"op", op}, {"pid", pid}});
  channels_[id] = std::move(ch).value();
  service(id);
}

void Agent::close_channel(uint32_t id) {
  if (auto w = watches_.find(id); w != watches_.end()) {
    unwatch(w->second.out);
    unwatch(w->second.err);
    unwatch(w->second.in);
    unwatch(w->second.pid);
    watches_.erase(w);
  }
  channels_.erase(id);  // hangs up and reaps the process
  log("info", "channel.close", {{"channel", std::to_string(id)}});
}

void Agent::service(uint32_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  Channel& ch = *it->second;
  if (welcomed_) {
    if (auto a = ch.take_input_ack()) send_control(Ack{id, Stream::kInput, *a});
    if (auto e = ch.take_exit(Channel::Clock::now())) {
      log("info", "channel.exit", {{"channel", std::to_string(id)}, {"code", std::to_string(e->code)}, {"signal", e->signal}});
      send_control(*e);
    }
    if (ch.finished()) {
      send_control(Close{id, "exited"});
      close_channel(id);
      return;
    }
  }
  update_watches(id);
  // Ask for a writable callback only with something to write: a spurious one costs a poll round
  // before the echo that follows.
  if (!control_.empty() || (welcomed_ && ch.has_frame())) want_write();
}

// ---- timers -----------------------------------------------------------------------------------

void Agent::tick() {
  // EXIT after the grace period, CLOSE after the last ACK: time-based, so looked at regularly.
  std::vector<uint32_t> ids;
  for (const auto& [id, ch] : channels_) ids.push_back(id);
  for (uint32_t id : ids) {
    if (auto it = channels_.find(id); it != channels_.end() && it->second->awaiting_exit_status())
      it->second->on_child_event();
    service(id);
  }
  // From the loop itself, so a stuck loop stops the pings; at half the interval systemd asked for.
  if (notifier_.watchdog_usec()) {
    auto now = Channel::Clock::now();
    if (now - last_watchdog_ >= std::chrono::microseconds(notifier_.watchdog_usec() / 2)) {
      notifier_.send("WATCHDOG=1");
      last_watchdog_ = now;
    }
  }
  arm(tick_timer_, &Agent::tick, kTickInterval);
}

void Agent::stats() {
  ChannelPids pids;  // so a GPU process is told apart by the terminal it runs in
  for (const auto& [id, ch] : channels_)
    if (pid_t p = ch->pid(); p > 0) pids[uint32_t(p)] = id;
  auto s = sampler_.sample(pids);  // sampled even offline, so the first interval after a reconnect is right
  if (welcomed_) send_control(s);
  arm(stats_timer_, &Agent::stats, kStatsInterval);
}

void Agent::status(const std::string& text) { notifier_.send("STATUS=" + text); }

}  // namespace rx::agent
