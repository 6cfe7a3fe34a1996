// The tools that attach to a terminal as a viewer (type, read), each on a uv loop of its own: the
// Attachment class. Apart from the REST tools (mcp_tools.cpp): only these two need libuv and lws.
#include "cli/mcp_impl.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>

#include "cli/output.h"
#include "cli/targets.h"
#include "cli/viewer_link.h"
#include "protocol/utf8.h"

namespace rx::cli {

using namespace mcp_detail;
using namespace std::chrono_literals;

namespace {

constexpr auto kAttachTimeout = 15s;
constexpr auto kCloseGrace = 2s;

bool takes_no_input(const std::string& status) { return status == "exited" || status == "lost" || status == "stopped"; }

// ---- one attach to a terminal, on a loop of its own ----

// A ViewerLink on a private uv loop, run until a hook calls finish(), the socket ends or the
// deadline passes. Hooks run on the loop (inside lws callbacks): they record and never throw.
class Attachment {
 public:
  Attachment(Profile hub, const std::string& terminal_id) {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &deadline_);
    uv_timer_init(&loop_, &soon_);
    deadline_.data = this;
    soon_.data = this;
    ViewerLink::Handlers h;
    h.on_open = [this] {
      opened = true;
      guard([this] {
        if (on_open) on_open();
      });
    };
    h.on_output = [this](uint64_t offset, std::span<const uint8_t> bytes) {
      guard([&] {
        if (on_output && !done_) on_output(offset, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      });
    };
    h.on_event = [this](const json& event) {
      guard([&] {
        if (on_event && !done_) on_event(event);
      });
    };
    h.on_closed = [this](int code, const std::string& reason, long http_status) {
      closed = true;
      close_code = code;
      close_reason = reason;
      this->http_status = http_status;
      done_ = true;
    };
    try {
      link_ = std::make_unique<ViewerLink>(&loop_, std::move(hub), terminal_id, std::move(h));
    } catch (...) {
      free_loop();
      throw;
    }
  }

  ~Attachment() {
    // Close the socket and let lws finish with it, then free the loop with nothing left on it.
    if (link_ && !closed) {
      link_->close();
      done_ = false;
      uv_timer_start(&deadline_, [](uv_timer_t* t) { static_cast<Attachment*>(t->data)->done_ = true; },
                     uint64_t(std::chrono::milliseconds(kCloseGrace).count()), 0);
      while (!closed && !done_ && uv_run(&loop_, UV_RUN_ONCE) != 0) {
      }
    }
    link_.reset();
    free_loop();
  }
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;

  std::function<void()> on_open;
  std::function<void(uint64_t offset, std::string_view bytes)> on_output;
  std::function<void(const json& event)> on_event;

  // Until finish(), the socket's end, or `timeout` (then timed_out).
  void run(std::optional<uint64_t> since, std::chrono::milliseconds timeout) {
    uv_timer_start(&deadline_, [](uv_timer_t* t) {
      auto* self = static_cast<Attachment*>(t->data);
      self->timed_out = !self->done_;
      self->done_ = true;
    }, uint64_t(timeout.count()), 0);
    link_->open(since);
    while (!done_ && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    uv_timer_stop(&deadline_);
    uv_timer_stop(&soon_);
  }
  void finish() { done_ = true; }
  // finish() in `delay`, or sooner if an earlier call said so.
  void finish_after(std::chrono::milliseconds delay) {
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&soon_)) && uv_timer_get_due_in(&soon_) <= uint64_t(delay.count())) return;
    uv_timer_start(&soon_, [](uv_timer_t* t) { static_cast<Attachment*>(t->data)->done_ = true; }, uint64_t(delay.count()), 0);
  }
  ViewerLink& link() { return *link_; }

  bool opened = false, closed = false, timed_out = false;
  int close_code = 0;
  long http_status = 0;
  std::string close_reason;
  std::string hook_failure;  // an exception a hook threw (then the attach is over)

  // Why the attach did not open, as a HubError (a 401 makes the server read its config again).
  [[noreturn]] void fail_to_attach(const HubClient& hub, const std::string& label) const {
    std::string why = !hook_failure.empty() ? hook_failure
                      : closed              ? (close_reason.empty() ? "the connection closed" : close_reason)
                                            : "no answer within " + std::to_string(std::chrono::seconds(kAttachTimeout).count()) + " s";
    if (http_status == 401)
      throw HubError("the hub " + hub.profile().hub + " refused the token (401: " + why + "); log in again with: rexec login " +
                         hub.profile().hub,
                     401, "unauthorized");
    throw HubError("cannot attach to terminal " + label + ": " + why, http_status, "");
  }

 private:
  void free_loop() {
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&soon_), nullptr);
    for (int turn = 0; turn < 100 && uv_loop_alive(&loop_); ++turn) uv_run(&loop_, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop_) == UV_EBUSY) {
      // Handles lws kept (it leaks its context rather than free it under them): closed, not run.
      uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
      uv_run(&loop_, UV_RUN_DEFAULT);
      uv_loop_close(&loop_);
    }
  }

  template <typename F>
  void guard(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      hook_failure = e.what();
      done_ = true;
    } catch (...) {
      hook_failure = "unexpected error";
      done_ = true;
    }
  }

  uv_loop_t loop_{};
  uv_timer_t deadline_{}, soon_{};
  bool done_ = false;
  std::unique_ptr<ViewerLink> link_;
};

}  // namespace

ToolResult McpServer::Impl::type(const json& args) {
  std::string name = need_string(args, "terminal", "the id or name of the terminal to type into");
  auto text = opt_string(args, "text");
  if (!text || text->empty()) throw BadParams("`text` is required: the keystrokes to send");
  if (text->size() > kMcpTypeMax)
    throw BadParams("`text` is " + std::to_string(text->size()) + " bytes; at most " + std::to_string(kMcpTypeMax) +
                    " a call (send the rest in another)");
  HubClient& h = hub();
  json t = find_terminal(h, name);
  std::string label = terminal_label(t), status = field(t, "status");
  if (takes_no_input(status)) throw Failure("terminal " + label + " is " + status + ": it takes no input");

  // Attached at the end of the output: nothing old is replayed, and the echo of what we type
  // (or a refusal) tells us the hub has taken the input.
  Attachment a(h.profile(), field(t, "id"));
  bool sent = false;
  std::vector<std::string> refusals;
  a.on_open = [&] {
    std::string_view rest = *text;
    while (!rest.empty()) {
      size_t n = std::min<size_t>(rest.size(), 32 * 1024);
      if (!a.link().send_input(std::span(reinterpret_cast<const uint8_t*>(rest.data()), n))) break;
      rest.remove_prefix(n);
    }
    sent = rest.empty();
    if (!sent) a.finish();
    a.finish_after(1500ms);  // a shell that echoes nothing (a password prompt) still gets its keys
  };
  a.on_output = [&](uint64_t, std::string_view) {
    if (sent) a.finish_after(100ms);  // a refusal would have come before the echo
  };
  a.on_event = [&](const json& e) {
    if (field(e, "type") != "error") return;
    refusals.push_back(field(e, "message").empty() ? field(e, "code") : field(e, "message") + " (" + field(e, "code") + ")");
    a.finish();
  };
  auto since = u64(t, "output_offset");
  a.run(since ? since : std::optional<uint64_t>(std::numeric_limits<uint64_t>::max() / 2), kAttachTimeout);
  if (!a.opened) a.fail_to_attach(h, label);
  if (!refusals.empty()) {
    std::string m = "the hub did not take the input for terminal " + label + ": ";
    for (size_t i = 0; i < refusals.size(); ++i) m += (i ? "; " : "") + refusals[i];
    return failed(m);
  }
  if (!sent) throw Failure("the connection to terminal " + label + " closed before the input was sent");
  return {{"typed " + std::to_string(text->size()) + " bytes into terminal " + label}, nullptr, false};
}

ToolResult McpServer::Impl::read(const json& args) {
  std::string name = need_string(args, "terminal", "the id or name of the terminal to read");
  uint64_t max = uint64_t(opt_int(args, "max_bytes", 1, kMcpReadMax).value_or(kMcpReadDefault));
  auto since_arg = opt_int(args, "since", 0, std::numeric_limits<int64_t>::max());
  auto wait_for = opt_string(args, "wait_for");
  if (wait_for && wait_for->empty()) wait_for.reset();
  int64_t timeout_s = opt_int(args, "timeout_s", 1, 300).value_or(kReadTimeoutDefault);
  HubClient& h = hub();
  json t = find_terminal(h, name);
  std::string label = terminal_label(t), status = field(t, "status");

  // Ask only for the window wanted: the last max_bytes of what there is now (the listing's
  // output_offset), or from `since` when that is nearer the end.
  auto known_end = u64(t, "output_offset");
  uint64_t from = since_arg ? uint64_t(*since_arg) : 0;
  if (known_end && *known_end > from + max && !wait_for) from = *known_end - max;
  if (known_end && *known_end > from + kMcpReadMax * 4) from = *known_end - kMcpReadMax * 4;

  std::string buf;  // output bytes from buf_start on
  uint64_t buf_start = from;
  bool have_start = false, found = false;
  std::optional<uint64_t> replay_end, found_at;
  const size_t keep = size_t(max) + (wait_for ? wait_for->size() : 0);
  Attachment a(h.profile(), field(t, "id"));
  auto check = [&] {
    if (wait_for) {
      size_t at = buf.find(*wait_for);
      if (at != std::string::npos) {
        found = true;
        found_at = buf_start + at;
        return a.finish();
      }
    } else if (replay_end && buf_start + buf.size() >= *replay_end) {
      return a.finish();  // all there was when we asked
    }
    if (buf.size() > keep + 64 * 1024) {  // bounded, however much streams past while we wait
      size_t drop = buf.size() - keep;
      buf.erase(0, drop);
      buf_start += drop;
    }
  };
  a.on_event = [&](const json& e) {
    std::string type = field(e, "type");
    if (type == "replay") {
      replay_end = u64(e, "end");
      check();
    } else if (type == "status") {
      status = field(e, "status");
    }
  };
  a.on_output = [&](uint64_t offset, std::string_view bytes) {
    if (!have_start) {  // past `from` when the ring no longer holds it (a gap event said so)
      buf_start = offset;
      have_start = true;
    }
    uint64_t next = buf_start + buf.size();
    if (offset > next) {  // bytes skipped: keep what follows on its own
      buf.clear();
      buf_start = next = offset;
    }
    if (offset + bytes.size() <= next) return;  // had these already
    bytes.remove_prefix(size_t(next - offset));
    buf.append(bytes);
    check();
  };
  a.run(from, wait_for ? std::chrono::milliseconds(std::chrono::seconds(timeout_s)) : std::chrono::milliseconds(kAttachTimeout));
  if (!a.opened) a.fail_to_attach(h, label);
  if (!a.hook_failure.empty()) throw Failure("reading terminal " + label + ": " + a.hook_failure);

  // The window to show: the last `max` bytes, or `max` from the match when that is older.
  uint64_t end = buf_start + buf.size();
  uint64_t start = end - std::min<uint64_t>(end - buf_start, max);
  if (found_at && *found_at < start) {
    start = *found_at;
    end = std::min(end, start + max);
  }
  bool gap = since_arg && start > uint64_t(*since_arg);
  std::string_view window(buf.data() + (start - buf_start), size_t(end - start));
  size_t orphans = start > 0 ? utf8_orphans(window) : 0;
  window.remove_prefix(orphans);
  start += orphans;
  if (!takes_no_input(status)) {  // a character still being written comes whole next time
    size_t tail = utf8_incomplete_tail(window);
    window.remove_suffix(tail);
    end -= tail;
  }
  std::string output = protocol::clean_utf8(window);

  std::string note = "[rexec: output bytes " + std::to_string(start) + ".." + std::to_string(end) + " of terminal " +
                     label + " (" + status + "); read with since=" + std::to_string(end) + " for what comes next";
  if (gap) note += "; earlier output is not shown";
  if (wait_for && !found) note += "; \"" + *wait_for + "\" did not appear within " + std::to_string(timeout_s) + " s";
  else if (!wait_for && a.timed_out) note += "; the hub sent less than it had within the time allowed";
  note += "]";
  json s{{"output", output}, {"start", start}, {"end", end}, {"status", status}};
  if (wait_for) s["found"] = found;
  if (gap) s["gap"] = true;
  return {{output, note}, s, false};
}

}  // namespace rx::cli
