#include "cli/connect.h"

#include <uv.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <set>

#include "cli/failure.h"
#include "cli/raw_tty.h"
#include "cli/viewer_link.h"

namespace rx::cli {

namespace {

using nlohmann::json;

constexpr uint64_t kFirstRetryMs = 200;
constexpr uint64_t kMaxRetryMs = 5000;
// After the exit event, output that was still on its way (the hub sends events first): take what
// comes until the socket has been quiet this long, or at most kMaxDrainMs.
constexpr uint64_t kQuietMs = 200;
constexpr uint64_t kMaxDrainMs = 2000;
// How long a goodbye (our close frame) may take before we stop waiting for the hub's answer.
constexpr uint64_t kCloseGraceMs = 1000;
// Keys typed while the link is down wait for it, up to this much; reading stdin pauses beyond.
constexpr size_t kMaxPendingInput = 1024 * 1024;

constexpr const char* kEscapeHelp =
    "Supported escape sequences:\r\n"
    " ~.   - detach (the terminal keeps running; rexec connect attaches again)\r\n"
    " ~?   - this message\r\n"
    " ~~   - send the escape character by typing it twice\r\n"
    "(Note that escapes are only recognized immediately after newline.)";

// All of `bytes` to `fd`, waiting when the descriptor is non-blocking and full. False on an error
// (the terminal is gone, the pipe closed).
bool write_all(int fd, const char* bytes, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, bytes, n);
    if (w > 0) {
      bytes += w;
      n -= size_t(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else if (w < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
    } else {
      return false;
    }
  }
  return true;
}

std::optional<winsize> window_size() {
  for (int fd : {0, 1, 2}) {
    winsize ws{};
    if (::isatty(fd) && ::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) return ws;
  }
  return std::nullopt;
}

template <typename H>
uv_handle_t* handle(H* h) {
  return reinterpret_cast<uv_handle_t*>(h);
}

class Session {
 public:
  Session(Profile hub, std::string terminal_id, std::string label)
      : hub_(std::move(hub)), id_(std::move(terminal_id)), label_(std::move(label)) {}
  ~Session() {
    if (loop_ready_) {  // run() did not get to the end
      teardown();
      link_.reset();
      free_loop();
    }
    restore_stdin_flags();
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  SessionEnd run();

 private:
  // ---- the link's side
  void on_open();
  void on_output(uint64_t offset, std::span<const uint8_t> bytes);
  void on_event(const json& event);
  void on_closed(int code, const std::string& reason, long http_status);
  void retry_later();
  void reconnect();
  // ---- the user's side
  void read_stdin();
  void on_keys(const char* bytes, size_t n);
  void send(std::string bytes);
  void flush_pending();
  void update_stdin_watch();
  void send_size(bool force);
  void show(const char* bytes, size_t n);
  void status_line(const std::string& text);
  // ---- the end
  void exited_soon(bool output_came);
  void finish(SessionEnd end);
  void teardown();
  void free_loop();
  void restore_stdin_flags() {
    if (stdin_flags_ >= 0) ::fcntl(0, F_SETFL, stdin_flags_);
    stdin_flags_ = -1;
  }
  // A C callback's body: nothing may throw through libuv or lws.
  template <typename F>
  void guarded(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      fail(std::string("internal error: ") + e.what());
    } catch (...) {
      fail("internal error");
    }
  }
  void fail(const std::string& message, long http_status = 0) {
    SessionEnd e;
    e.kind = SessionEnd::Kind::kFailed;
    e.status = 1;
    e.message = message;
    e.http_status = http_status;
    finish(std::move(e));
  }

  Profile hub_;
  std::string id_, label_;

  uv_loop_t loop_{};
  bool loop_ready_ = false;
  uv_poll_t stdin_poll_{};
  uv_idle_t stdin_file_{};  // stdin that epoll cannot watch (a regular file, /dev/null): read as it goes
  bool stdin_is_file_ = false, stdin_watched_ = false, stdin_eof_ = false;
  uv_signal_t winch_{}, cont_{};
  uv_timer_t retry_timer_{}, drain_timer_{}, close_timer_{};
  std::vector<uv_handle_t*> handles_;  // every handle initialised above, closed at the end
  std::unique_ptr<ViewerLink> link_;
  std::optional<RawTty> tty_;
  bool interactive_ = false;  // stdin is a terminal: raw mode and escapes
  // uv_poll makes stdin non-blocking, and with it the file description the shell (and, on a
  // terminal, our stdout) share: put the flags back at the end.
  int stdin_flags_ = -1;

  // What the screen has: the offset of the next byte expected (unknown before the first output),
  // and whether the cursor is at the start of a line (for our own status lines).
  std::optional<uint64_t> next_offset_;
  bool at_line_start_ = true;

  enum class Escape { kNormal, kLineStart, kTilde };
  Escape escape_ = Escape::kLineStart;
  std::string pending_input_;  // typed while the link is down
  std::optional<std::pair<uint16_t, uint16_t>> sent_size_;

  bool ever_open_ = false;
  bool lost_told_ = false;
  uint64_t retry_ms_ = kFirstRetryMs;
  std::string terminal_status_;
  std::set<std::string> errors_told_;

  std::optional<int> exit_code_;
  bool exited_ = false;  // status "exited" seen (the exit event normally follows)
  uint64_t exited_at_ = 0;
  bool ending_ = false, torn_down_ = false;
  SessionEnd end_;
};

SessionEnd Session::run() {
  if (int rc = uv_loop_init(&loop_); rc != 0) throw Failure(std::string("cannot start an event loop: ") + uv_strerror(rc));
  loop_ready_ = true;
  auto init_timer = [&](uv_timer_t* t) {
    uv_timer_init(&loop_, t);
    t->data = this;
    handles_.push_back(handle(t));
  };
  init_timer(&retry_timer_);
  init_timer(&drain_timer_);
  init_timer(&close_timer_);
  for (uv_signal_t* s : {&winch_, &cont_}) {
    uv_signal_init(&loop_, s);
    s->data = this;
    handles_.push_back(handle(s));
  }

  ViewerLink::Handlers h;
  h.on_open = [this] { guarded([&] { on_open(); }); };
  h.on_output = [this](uint64_t offset, std::span<const uint8_t> bytes) { guarded([&] { on_output(offset, bytes); }); };
  h.on_event = [this](const json& event) { guarded([&] { on_event(event); }); };
  h.on_closed = [this](int code, const std::string& reason, long http_status) {
    guarded([&] { on_closed(code, reason, http_status); });
  };
  link_ = std::make_unique<ViewerLink>(&loop_, hub_, id_, std::move(h));

  interactive_ = ::isatty(0);
  if (interactive_) tty_.emplace(0);
  // A closed stdout is an error to report (show()), not a signal that kills us in raw mode.
  ::signal(SIGPIPE, SIG_IGN);

  // stdin: a terminal or a pipe is watched; a file (or /dev/null) is read a piece per loop turn.
  stdin_flags_ = ::fcntl(0, F_GETFL);
  if (uv_poll_init(&loop_, &stdin_poll_, 0) == 0) {
    stdin_poll_.data = this;
    handles_.push_back(handle(&stdin_poll_));
  } else {
    uv_idle_init(&loop_, &stdin_file_);
    stdin_file_.data = this;
    handles_.push_back(handle(&stdin_file_));
    stdin_is_file_ = true;
  }
  update_stdin_watch();

  uv_signal_start(&winch_, [](uv_signal_t* s, int) {
    auto* self = static_cast<Session*>(s->data);
    self->guarded([&] { self->send_size(false); });
  }, SIGWINCH);
  // Back from a stop (kill -STOP, a debugger): the shell may have put the terminal back to cooked.
  uv_signal_start(&cont_, [](uv_signal_t* s, int) {
    auto* self = static_cast<Session*>(s->data);
    self->guarded([&] {
      if (self->tty_) self->tty_->enter();
      self->send_size(true);
    });
  }, SIGCONT);

  link_->open();
  uv_run(&loop_, UV_RUN_DEFAULT);
  teardown();  // in case the loop ran dry by itself
  link_.reset();  // lws's half of the teardown, on the stopped loop
  free_loop();
  restore_stdin_flags();
  if (!at_line_start_ && end_.kind != SessionEnd::Kind::kExited) write_all(2, "\r\n", 2);
  tty_.reset();
  if (end_.kind == SessionEnd::Kind::kDetached) {
    std::string line = "rexec: detached from " + label_ + " (it keeps running)\n";
    write_all(2, line.data(), line.size());
  }
  return end_;
}

void Session::free_loop() {
  if (!loop_ready_) return;
  for (auto* h : handles_)
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  handles_.clear();
  uv_run(&loop_, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop_) == UV_EBUSY) {
    // Something not ours is still open (it should not be): close it rather than leak the loop.
    uv_walk(&loop_, [](uv_handle_t* h, void*) {
      if (!uv_is_closing(h)) uv_close(h, nullptr);
    }, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  loop_ready_ = false;
}

// ---- the link's side ---------------------------------------------------------------------------

void Session::on_open() {
  if (ending_) return;
  ever_open_ = true;
  retry_ms_ = kFirstRetryMs;
  if (lost_told_) {
    status_line("rexec: reconnected");
    lost_told_ = false;
  }
  send_size(true);
  flush_pending();
}

void Session::on_output(uint64_t offset, std::span<const uint8_t> bytes) {
  if (torn_down_) return;
  if (!next_offset_) next_offset_ = offset;  // the first attach starts wherever the hub's ring does
  uint64_t end = offset + bytes.size();
  if (end <= *next_offset_) return;  // a resend of what is on the screen already
  size_t skip = offset < *next_offset_ ? size_t(*next_offset_ - offset) : 0;
  next_offset_ = end;
  show(reinterpret_cast<const char*>(bytes.data()) + skip, bytes.size() - skip);
  if (exit_code_ || exited_) exited_soon(true);
}

void Session::on_event(const json& event) {
  if (ending_) return;
  std::string type = event.value("type", "");
  if (type == "exit") {
    int code = event.contains("code") && event["code"].is_number_integer() ? event["code"].get<int>() : 0;
    exit_code_ = std::clamp(code, 0, 255);
    exited_soon(false);
  } else if (type == "status") {
    std::string status = event.value("status", "");
    std::string before = terminal_status_;
    terminal_status_ = status;
    if (status == "exited") {
      exited_ = true;
      exited_soon(false);
    } else if (status == "lost") {
      fail("terminal " + label_ + " is lost: its machine no longer has it");
    } else if (status == "stopped") {
      fail("terminal " + label_ + " was stopped (rexec start " + label_ + " starts it again)");
    } else if (status == "offline" && before != "offline") {
      status_line("rexec: the machine of " + label_ + " is offline; waiting for it to come back...");
    } else if (status == "running" && before == "offline") {
      status_line("rexec: the machine of " + label_ + " is back");
    }
    // The hub drops a resize while the terminal has no agent (starting, offline): say it again.
    if (status == "running" && before != "running") send_size(true);
  } else if (type == "gap") {
    uint64_t from = event.value("from", uint64_t(0)), to = event.value("to", uint64_t(0));
    if (to > from)
      status_line("rexec: " + std::to_string(to - from) + " bytes of output were lost while away (the hub keeps the last 2 MiB)");
    if (!next_offset_ || *next_offset_ < to) next_offset_ = to;
  } else if (type == "error") {
    std::string code = event.value("code", "");
    if (!errors_told_.insert(code).second) return;  // once each: a stream of refusals is one line
    if (code == "read_only") status_line("rexec: you may only watch " + label_ + ": your keys are not sent");
    else if (code == "input_dropped") status_line("rexec: the machine of " + label_ + " is not taking input: some keys were dropped");
    else if (code != "not_running") status_line("rexec: the hub says: " + event.value("message", code));
  }
}

void Session::on_closed(int code, const std::string& reason, long http_status) {
  if (ending_) return teardown();
  if (exit_code_ || exited_) {  // everything the hub had is in: that was the end
    uv_timer_stop(&drain_timer_);
    SessionEnd e;
    e.kind = SessionEnd::Kind::kExited;
    e.status = exit_code_.value_or(0);
    e.exit_code_unknown = !exit_code_;
    return finish(std::move(e));
  }
  std::string why = reason.empty() ? "the connection closed" : reason;
  if (http_status) {
    // Refused before the upgrade: the token, the terminal or the hub said no. A hub shutting down
    // (503) or busy (429) is worth waiting for once we were in.
    bool transient = http_status == 503 || http_status == 429 || http_status >= 500;
    if (!transient || !ever_open_)
      return fail("cannot attach to terminal " + label_ + ": " + why + " (HTTP " + std::to_string(http_status) + ")",
                  http_status);
    return retry_later();
  }
  if (code == 1000) {
    if (reason.find("restarted") != std::string::npos) {
      // A new shell (a container restarted): its output starts from 0 again.
      status_line("rexec: " + label_ + " restarted; attaching to the new shell");
      next_offset_.reset();
      return reconnect();
    }
    if (reason.find("deleted") != std::string::npos) return fail("terminal " + label_ + " was deleted");
    return fail("the hub closed the connection: " + why);
  }
  // 1001 going away, 1005/1006 no status, 1011 hub error, 4008 backlog, 4012 restarting, 0 cut.
  bool transient = code == 0 || code == 1001 || code == 1005 || code == 1006 || code == 1011 || code == 4008 ||
                   code == 4012;
  if (!transient) return fail("the hub closed the connection: " + why + " (" + std::to_string(code) + ")");
  if (!ever_open_) return fail(why);
  retry_later();
}

void Session::retry_later() {
  if (!lost_told_) {
    status_line("rexec: connection lost, reconnecting...");
    lost_told_ = true;
  }
  uint64_t delay = retry_ms_;
  retry_ms_ = std::min(retry_ms_ * 2, kMaxRetryMs);
  uv_timer_start(&retry_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Session*>(t->data);
    self->guarded([&] { self->reconnect(); });
  }, delay, 0);
}

void Session::reconnect() {
  if (ending_) return;
  link_->open(next_offset_);
}

// ---- the user's side ---------------------------------------------------------------------------

void Session::update_stdin_watch() {
  bool want = !ending_ && !stdin_eof_ && pending_input_.size() < kMaxPendingInput;
  if (want == stdin_watched_) return;
  stdin_watched_ = want;
  if (stdin_is_file_) {
    if (!want) uv_idle_stop(&stdin_file_);
    else uv_idle_start(&stdin_file_, [](uv_idle_t* i) {
      auto* self = static_cast<Session*>(i->data);
      self->guarded([&] { self->read_stdin(); });
    });
    return;
  }
  if (!want) uv_poll_stop(&stdin_poll_);
  else uv_poll_start(&stdin_poll_, UV_READABLE | UV_DISCONNECT, [](uv_poll_t* p, int status, int) {
    auto* self = static_cast<Session*>(p->data);
    self->guarded([&] {
      if (status < 0) {
        self->stdin_eof_ = true;
        self->update_stdin_watch();
        return;
      }
      self->read_stdin();
    });
  });
}

void Session::read_stdin() {
  char buf[16384];
  ssize_t n = ::read(0, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    stdin_eof_ = true;
    update_stdin_watch();
    // A terminal that hangs up is a detach. A pipe that ends is not: the shell may still be
    // working on what it was sent, so the session goes on until it exits.
    if (interactive_) finish({SessionEnd::Kind::kDetached, 0, "", 0, false});
    return;
  }
  if (interactive_) on_keys(buf, size_t(n));
  else send(std::string(buf, size_t(n)));
}

void Session::on_keys(const char* bytes, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    char c = bytes[i];
    if (escape_ == Escape::kTilde) {
      escape_ = Escape::kNormal;
      if (c == '.') {
        send(std::move(out));
        return finish({SessionEnd::Kind::kDetached, 0, "", 0, false});
      }
      if (c == '?') {
        send(std::move(out));
        out.clear();
        status_line("~?\r\n" + std::string(kEscapeHelp));
        escape_ = Escape::kLineStart;
        continue;
      }
      if (c == '~') {
        out += '~';
        continue;
      }
      out += '~';  // not an escape: the tilde goes, then this key as usual
    }
    if (escape_ == Escape::kLineStart && c == '~') {
      escape_ = Escape::kTilde;  // held back until the next key says what it is
      continue;
    }
    out += c;
    escape_ = c == '\r' || c == '\n' ? Escape::kLineStart : Escape::kNormal;
  }
  send(std::move(out));
}

void Session::send(std::string bytes) {
  if (bytes.empty() || ending_) return;
  if (pending_input_.empty() && link_->is_open() &&
      link_->send_input(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())))
    return;
  pending_input_ += bytes;
  update_stdin_watch();
}

void Session::flush_pending() {
  if (pending_input_.empty() || !link_->is_open()) return;
  if (link_->send_input(std::span(reinterpret_cast<const uint8_t*>(pending_input_.data()), pending_input_.size())))
    pending_input_.clear();
  update_stdin_watch();
}

void Session::send_size(bool force) {
  auto ws = window_size();
  if (!ws || !link_ || !link_->is_open()) return;
  std::pair<uint16_t, uint16_t> size{ws->ws_col, ws->ws_row};
  if (!force && sent_size_ == size) return;
  if (link_->send_resize(size.first, size.second)) sent_size_ = size;
}

void Session::show(const char* bytes, size_t n) {
  if (n == 0) return;
  if (!write_all(1, bytes, n)) {
    // Nowhere to show it (the terminal or the pipe is gone): the terminal itself runs on.
    SessionEnd e;
    e.kind = SessionEnd::Kind::kFailed;
    e.status = 1;
    e.message = std::string("cannot write to stdout: ") + std::strerror(errno);
    return finish(std::move(e));
  }
  at_line_start_ = bytes[n - 1] == '\n';
}

void Session::status_line(const std::string& text) {
  std::string s = at_line_start_ ? "" : "\r\n";
  s += text + "\r\n";
  write_all(2, s.data(), s.size());
  at_line_start_ = true;
}

// ---- the end -----------------------------------------------------------------------------------

void Session::exited_soon(bool output_came) {
  if (ending_) return;
  uint64_t now = uv_now(&loop_);
  if (!exited_at_) exited_at_ = now;
  if (!output_came && uv_is_active(handle(&drain_timer_))) return;
  uint64_t left = exited_at_ + kMaxDrainMs > now ? exited_at_ + kMaxDrainMs - now : 0;
  uv_timer_start(&drain_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Session*>(t->data);
    self->guarded([&] {
      SessionEnd e;
      e.kind = SessionEnd::Kind::kExited;
      e.status = self->exit_code_.value_or(0);
      e.exit_code_unknown = !self->exit_code_;
      self->finish(std::move(e));
    });
  }, std::min(kQuietMs, left), 0);
}

void Session::finish(SessionEnd end) {
  if (ending_) return;
  ending_ = true;
  end_ = std::move(end);
  update_stdin_watch();
  uv_timer_stop(&retry_timer_);
  uv_timer_stop(&drain_timer_);
  if (link_ && link_->is_open()) {
    // Say goodbye; the hub's answer (on_closed) or the grace timer ends the loop.
    link_->close();
    uv_timer_start(&close_timer_, [](uv_timer_t* t) {
      auto* self = static_cast<Session*>(t->data);
      self->teardown();
    }, kCloseGraceMs, 0);
    return;
  }
  teardown();
}

void Session::teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  ending_ = true;
  for (auto* h : handles_)
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  handles_.clear();
  uv_stop(&loop_);  // lws's handles keep the loop alive: ~ViewerLink closes them
}

}  // namespace

SessionEnd run_session(const Profile& hub, const std::string& terminal_id, const std::string& label) {
  Session session(hub, terminal_id, label);
  return session.run();
}

}  // namespace rx::cli
