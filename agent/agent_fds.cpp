// Agent, its file descriptors: the watches that tell it a channel's pty or pipe is ready (lws
// adopts each fd as a raw file), and upgrades, where those fds are handed to the next agent
// process (handover.h). The link and the frames are in agent.cpp.
#include "agent/agent.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "agent/secrets.h"
#include "protocol/codec.h"
#include "protocol/log_line.h"

namespace rx::agent {

using namespace protocol;

// ---- fd watches -------------------------------------------------------------------------------

void Agent::watch(std::unique_ptr<Watch>& slot, uint32_t channel, Watch::Kind kind, int fd) {
  if (slot || fd < 0) return;
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);  // lws closes its copy when the watch ends
  if (dup < 0) return;
  lws_sock_file_fd_type u;
  u.filefd = dup;
  auto w = std::make_unique<Watch>(Watch{this, channel, kind, nullptr});
  lws* wsi = lws_adopt_descriptor_vhost(vhost_, LWS_ADOPT_RAW_FILE_DESC, u, kFdProtocol, nullptr);
  if (!wsi) {
    ::close(dup);
    return;
  }
  lws_set_opaque_user_data(wsi, w.get());
  w->wsi = wsi;
  if (kind == Watch::kInput) {
    lws_rx_flow_control(wsi, 0);  // this watch is for writability only
    lws_callback_on_writable(wsi);
  }
  slot = std::move(w);
}

void Agent::unwatch(std::unique_ptr<Watch>& slot) {
  if (!slot) return;
  if (slot->wsi) {
    lws_set_opaque_user_data(slot->wsi, nullptr);
    lws_set_timeout(slot->wsi, static_cast<pending_timeout>(1), LWS_TO_KILL_ASYNC);
  }
  slot.reset();
}

void Agent::update_watches(uint32_t id) {
  auto it = channels_.find(id);
  if (it == channels_.end()) return;
  Channel& ch = *it->second;
  Watches& w = watches_[id];
  // A stream out of credit is not watched at all: its PTY stays unread and the writer blocks.
  ch.wants_read(Stream::kOutput) ? watch(w.out, id, Watch::kOutput, ch.output_fd(Stream::kOutput)) : unwatch(w.out);
  ch.wants_read(Stream::kStderr) ? watch(w.err, id, Watch::kStderr, ch.output_fd(Stream::kStderr)) : unwatch(w.err);
  ch.input_pending() ? watch(w.in, id, Watch::kInput, ch.input_fd()) : unwatch(w.in);
  ch.exit_watch_fd() >= 0 ? watch(w.pid, id, Watch::kPid, ch.exit_watch_fd()) : unwatch(w.pid);
}

int Agent::on_fd(lws* wsi, lws_callback_reasons reason) {
  auto* w = static_cast<Watch*>(lws_get_opaque_user_data(wsi));
  if (!w) return reason == LWS_CALLBACK_RAW_RX_FILE ? -1 : 0;  // an unwatched fd still firing: close it now
  if (w->kind == Watch::kSignal) {
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
      signalfd_siginfo si{};
      while (::read(signal_fd_, &si, sizeof(si)) == sizeof(si)) {
        log("info", "agent.signal", {{"signal", signal_name(int(si.ssi_signo))}});
        if (si.ssi_signo == SIGHUP) upgrade_requested_ = true;  // run() does it, outside any callback
        else stopping_ = true;
      }
      lws_cancel_service(context_);
    }
    return 0;
  }
  uint32_t id = w->channel;
  auto it = channels_.find(id);
  if (it == channels_.end()) return 0;
  Channel& ch = *it->second;
  switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
      if (w->kind == Watch::kPid) ch.on_child_event();
      else if (w->kind == Watch::kOutput) ch.read_output(Stream::kOutput);
      else if (w->kind == Watch::kStderr) ch.read_output(Stream::kStderr);
      break;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
      // Not lws_callback_on_writable() here: lws clears POLLOUT on a raw file after this callback
      // returns (ops-raw-file.c), so a request made now is lost and the rest of a paste would wait
      // for the next keystroke. Asked for after the service round instead.
      if (w->kind == Watch::kInput && ch.flush_input()) rearm_.insert(id);
      break;
    case LWS_CALLBACK_RAW_CLOSE_FILE: {
      // lws gave up on the fd (POLLHUP: the terminal's other side closed). Read what is left
      // through the channel's own fd before forgetting the watch, so no tail is lost.
      lws_set_opaque_user_data(wsi, nullptr);  // lws calls back once more while closing
      w->wsi = nullptr;
      Watches& ws = watches_[id];
      if (w->kind == Watch::kOutput) {
        ch.read_output(Stream::kOutput);
        ws.out.reset();
      } else if (w->kind == Watch::kStderr) {
        ch.read_output(Stream::kStderr);
        ws.err.reset();
      } else if (w->kind == Watch::kPid) {
        ch.on_child_event();
        ws.pid.reset();
      } else {
        ws.in.reset();
      }
      break;
    }
    default:
      return 0;
  }
  service(id);
  return 0;
}

void Agent::rearm_input() {
  for (uint32_t id : rearm_) {
    auto w = watches_.find(id);
    if (w != watches_.end() && w->second.in && w->second.in->wsi) lws_callback_on_writable(w->second.in->wsi);
  }
  rearm_.clear();
}

// ---- upgrades (handover.h) --------------------------------------------------------------------

void Agent::adopt_channels(InheritedFds& in) {
  if (!in.problem.empty()) log("warn", "agent.handover_problem", {{"reason", in.problem}});
  if (in.empty()) return;
  std::vector<std::string> names = in.names();
  // Taken out of systemd's store at once: a copy left there would keep a closed terminal's
  // master open (no hangup for its shell) and come back on every later restart.
  auto leave_store = [&] {
    if (in.from_systemd())
      for (const auto& n : names) notifier_.send_fds("FDSTOREREMOVE=1\nFDNAME=" + n, {});
  };
  const char* from = in.from_systemd() ? "systemd fd store" : "re-exec";
  int state_fd = in.take(kStateFdName);
  Result<std::vector<uint8_t>> bytes = make_error("bad_handover", std::string("no ") + kStateFdName +
                                                                      " among the inherited descriptors");
  if (state_fd >= 0) {
    bytes = read_state_fd(state_fd);
    ::close(state_fd);
  }
  auto state = bytes ? decode_handover(*bytes) : Result<HandoverState>(bytes.error());
  if (!state) {
    // Nothing to resume them with: the descriptors close with `in`, which hangs their shells up.
    log("error", "agent.handover_failed", {{"from", from}, {"reason", state.error().message},
                                           {"descriptors", std::to_string(names.size())}});
    leave_store();
    return;
  }
  auto now = Channel::Clock::now();
  for (const auto& snap : state->channels) {
    int master = in.take(master_fd_name(snap.id));
    int pidfd = in.take(pid_fd_name(snap.id));
    channels_[snap.id] = Channel::restore(snap, master, pidfd, now);
    log("info", "channel.resumed", {{"channel", std::to_string(snap.id)}, {"pid", std::to_string(snap.pid)},
                                    {"output_offset", std::to_string(snap.ring_start + snap.ring.size())},
                                    {"terminal", master >= 0 ? "yes" : "gone"}});
  }
  leave_store();
  log("info", "agent.resumed", {{"from", from}, {"channels", std::to_string(state->channels.size())}});
  for (const auto& snap : state->channels) service(snap.id);
}

std::pair<int, std::vector<std::pair<std::string, int>>> Agent::prepare_handover() {
  // Exec runs end here: the hub fails them when the link drops, there is no one to resume for.
  std::vector<uint32_t> execs;
  for (const auto& [id, ch] : channels_)
    if (!ch->can_hand_over()) execs.push_back(id);
  for (uint32_t id : execs) close_channel(id);
  HandoverState state;
  std::vector<std::pair<std::string, int>> fds;
  auto now = Channel::Clock::now();
  for (const auto& [id, ch] : channels_) {
    state.channels.push_back(ch->snapshot(now));
    if (ch->input_fd() >= 0) fds.emplace_back(master_fd_name(id), ch->input_fd());
    // A reaped shell's pidfd stays behind: its status is in the state, and systemd would drop
    // the fd anyway (a reaped pidfd polls as hung up).
    if (!state.channels.back().exited && ch->pidfd() >= 0) fds.emplace_back(pid_fd_name(id), ch->pidfd());
  }
  auto fd = write_state_fd(encode_handover(state));
  if (!fd) {
    log("error", "agent.handover_failed", {{"reason", fd.error().message}});
    return {-1, {}};
  }
  fds.insert(fds.begin(), {kStateFdName, *fd});
  return {*fd, fds};
}

void Agent::upgrade_in_place() {
  struct stat st {};
  if (options_.self_path.empty() || options_.argv.empty()) {
    log("error", "agent.upgrade_refused", {{"reason", "the agent does not know its own binary"}});
    return;
  }
  if (::stat(options_.credential_file.c_str(), &st) != 0) {
    // The new process reads its credential there, as any restart does; without it, it could not
    // connect and every terminal would be lost.
    log("error", "agent.upgrade_refused", {{"reason", "no credential in " + options_.credential_file + " to restart with"}});
    return;
  }
  if (::access(options_.self_path.c_str(), X_OK) != 0) {
    log("error", "agent.upgrade_refused", {{"reason", "cannot run " + options_.self_path + ": " + std::strerror(errno)}});
    return;
  }
  auto [state_fd, fds] = prepare_handover();
  if (state_fd < 0) return;
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.starts_with("REXEC_HANDOVER_FDS=") || v.starts_with("LISTEN_") || v.starts_with("NOTIFY_SOCKET=") ||
        v.starts_with("WATCHDOG_"))
      continue;
    env.emplace_back(v);
  }
  for (auto& v : notifier_.environment()) env.push_back(std::move(v));
  status("upgrading: re-executing " + options_.self_path);
  log("info", "agent.upgrade", {{"path", options_.self_path}, {"channels", std::to_string(channels_.size())}});
  auto r = reexec(options_.self_path, options_.argv, env, fds);
  ::close(state_fd);  // still here: the exec failed, carry on as before
  log("error", "agent.upgrade_failed", {{"reason", r.error().message}});
  status(link_ && welcomed_ ? "connected to " + options_.hub : "disconnected: upgrade failed");
}

void Agent::hand_over_to_systemd() {
  bool any = false;
  for (const auto& [id, ch] : channels_) any = any || ch->can_hand_over();
  if (!any) return;
  auto [state_fd, fds] = prepare_handover();
  if (state_fd < 0) return;
  bool sent = true;
  for (const auto& [name, fd] : fds) {
    // Whatever a crashed generation may have left under the name goes first: one of each, ours.
    (void)notifier_.send_fds("FDSTOREREMOVE=1\nFDNAME=" + name, {});
    sent = notifier_.send_fds("FDSTORE=1\nFDNAME=" + name, std::span<const int>(&fd, 1)) && sent;
  }
  bool confirmed = sent && notifier_.barrier(std::chrono::seconds(3));
  ::close(state_fd);
  if (!sent) {
    log("error", "agent.handover_failed", {{"reason", "systemd's notify socket did not take the descriptors"}});
    return;  // the channels hang up as on any stop
  }
  // From here systemd holds the terminals: the next agent of the unit resumes them, or, if the
  // unit is stopped for good (or has no FileDescriptorStoreMax=), systemd closes them.
  for (auto& [id, ch] : channels_) ch->release();
  log("info", "agent.handed_over", {{"channels", std::to_string(channels_.size())},
                                    {"confirmed", confirmed ? "yes" : "no (no answer to BARRIER=1)"}});
}

}  // namespace rx::agent
