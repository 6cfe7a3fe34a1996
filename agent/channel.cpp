#include "agent/channel.h"

#include <unistd.h>

#include <algorithm>

#include "agent/file_op.h"
#include "protocol/codec.h"
#include "protocol/limits.h"

namespace rx::agent {

using protocol::Stream;

namespace {
constexpr auto kExitGrace = std::chrono::seconds(2);
constexpr size_t kReadChunk = 64 * 1024;
}  // namespace

Channel::Output::Output(uint32_t window) : ring(protocol::kReplayBytes), credit(window) {}

Channel::Channel(uint32_t id, protocol::ChannelKind kind, uint32_t window)
    : id_(id), kind_(kind), out_(window), err_(window), input_(window) {}

Result<std::unique_ptr<Channel>> Channel::open(const protocol::Open& o, const ChannelConfig& config) {
  std::unique_ptr<Channel> ch(new Channel(o.channel, o.kind, o.window ? o.window : protocol::kDefaultWindow));
  auto who = choose_account(o, config.user_map, config.account, config.etc, ::getuid());
  if (!who) return who.error();
  SpawnOptions s;
  s.argv = o.argv;
  s.env = o.env;
  s.cols = o.cols;
  s.rows = o.rows;
  s.account = who->account;
  if (who->is_default) s.shell = config.shell;
  // The hub sets CUDA_VISIBLE_DEVICES for a lease; without one, CUDA must see no device (an empty
  // list hides them all; "void" does the same for containers started with the NVIDIA runtime).
  if (config.gpu_policy == "lease-required" && !s.env.count("CUDA_VISIBLE_DEVICES")) {
    s.env["CUDA_VISIBLE_DEVICES"] = "";
    s.env["NVIDIA_VISIBLE_DEVICES"] = "void";
  }
  if (o.kind == protocol::ChannelKind::kPty) {
    auto p = PtyProcess::spawn(s);
    if (!p) return p.error();
    ch->pty_ = std::move(p).value();
  } else {
    auto e = ExecProcess::spawn(s);
    if (!e) return e.error();
    ch->exec_ = std::move(e).value();
    ch->err_.present = true;
  }
  ch->out_.present = true;
  return ch;
}

Result<std::unique_ptr<Channel>> Channel::open(const protocol::FileOpen& f, const ChannelConfig& config) {
  std::unique_ptr<Channel> ch(new Channel(f.channel, protocol::ChannelKind::kExec,
                                          f.window ? f.window : protocol::kDefaultWindow));
  // The account by the very rules of an OPEN: a file is read or written by whoever the same
  // user's terminal runs as, never by someone with more rights.
  protocol::Open as;
  as.channel = f.channel;
  as.kind = protocol::ChannelKind::kExec;
  as.user = f.user;
  as.account = f.account;
  auto who = choose_account(as, config.user_map, config.account, config.etc, ::getuid());
  if (!who) return who.error();
  SpawnOptions s;
  s.account = who->account;
  s.run = [op = f.op, path = f.path, mode = f.mode, flags = f.flags] { return file_op(op, path, mode, flags); };
  auto e = ExecProcess::spawn(s);
  if (!e) return e.error();
  ch->exec_ = std::move(e).value();
  ch->file_ = true;
  ch->out_.present = true;
  ch->err_.present = true;
  return ch;
}

pid_t Channel::pid() { return pty_ ? pty_->child().pid() : exec_->child().pid(); }

int Channel::output_fd(Stream s) const {
  const Output& o = out(s);
  if (!o.present || o.eof) return -1;
  if (pty_) return s == Stream::kOutput ? pty_->master() : -1;
  return s == Stream::kStderr ? exec_->stderr_fd() : exec_->stdout_fd();
}

int Channel::input_fd() const { return pty_ ? pty_->master() : exec_->stdin_fd(); }

int Channel::pidfd() { return pty_ ? pty_->child().pidfd() : exec_->child().pidfd(); }

bool Channel::wants_read(Stream s) const {
  const Output& o = out(s);
  if (!o.present || o.eof) return false;
  // Credit covers bytes read but not yet acknowledged, sent or not.
  return o.ring.end() - o.credit.acked() < o.credit.window();
}

void Channel::read_output(Stream s) {
  Output& o = out(s);
  int fd = output_fd(s);
  uint8_t buf[kReadChunk];
  while (fd >= 0 && wants_read(s)) {
    size_t room = size_t(o.credit.window() - (o.ring.end() - o.credit.acked()));
    auto r = read_some(fd, std::span(buf, std::min(room, sizeof(buf))));
    if (r.bytes > 0) o.ring.append(std::span(buf, r.bytes));
    if (r.eof) {
      o.eof = true;
      if (exec_) (s == Stream::kStderr ? exec_->close_stderr() : exec_->close_stdout());
      return;
    }
    if (r.bytes == 0) return;  // would block
  }
}

std::optional<std::vector<uint8_t>> Channel::next_frame(size_t max, size_t headroom) {
  for (int i = 0; i < 2; ++i) {
    Stream s = next_stream_;
    next_stream_ = (s == Stream::kOutput && err_.present) ? Stream::kStderr : Stream::kOutput;
    Output& o = out(s);
    if (!o.present || o.credit.sent() >= o.ring.end() || o.credit.available() == 0) continue;
    if (o.credit.sent() < o.ring.start()) {
      // The bytes the hub asked for are gone (it was away longer than the ring holds): skip to
      // what we still have; the hub sees the jump in the offset.
      o.credit.rewind(o.ring.start());
    }
    size_t n = std::min({max, o.credit.available(), size_t(o.ring.end() - o.credit.sent())});
    auto view = o.ring.view(o.credit.sent(), n);
    if (!view || view->size() == 0) continue;
    auto frame = protocol::encode_data(id_, s, o.credit.sent(), view->first, view->second, headroom);
    (void)o.credit.on_sent(view->size());
    return frame;
  }
  return std::nullopt;
}

bool Channel::has_frame() const {
  for (const Output* o : {&out_, &err_})
    if (o->present && o->credit.sent() < o->ring.end() && o->credit.available() > 0) return true;
  return false;
}

void Channel::on_ack(Stream s, uint64_t offset) {
  if (s == Stream::kInput) return;
  (void)out(s).credit.on_ack(offset);  // an ACK beyond what was sent is ignored (a confused hub)
}

void Channel::resume(Stream s, std::optional<uint64_t> received) {
  Output& o = out(s);
  if (!o.present) return;
  uint64_t from = received.value_or(o.ring.start());
  from = std::clamp(from, o.ring.start(), o.ring.end());
  o.credit.rewind(from);
}

void Channel::on_input(uint64_t offset, std::span<const uint8_t> bytes) {
  if (bytes.empty() && exec_) {
    close_stdin_after_flush_ = true;  // end of stdin
    flush_input();
    return;
  }
  auto accept = input_.on_data(offset, bytes.size());
  if (accept.skip >= bytes.size()) return;
  pending_input_.insert(pending_input_.end(), bytes.begin() + long(accept.skip), bytes.end());
  flush_input();
}

bool Channel::flush_input() {
  int fd = input_fd();
  if (fd < 0) {
    pending_input_.clear();
    input_.on_consumed(input_.received());
    return false;
  }
  if (!pending_input_.empty()) {
    ssize_t n = write_some(fd, pending_input_);
    if (n < 0) {
      // The program closed its input: what it will never read counts as consumed.
      pending_input_.clear();
    } else {
      pending_input_.erase(pending_input_.begin(), pending_input_.begin() + n);
    }
    input_.on_consumed(input_.received() - pending_input_.size());
  }
  if (pending_input_.empty() && close_stdin_after_flush_ && exec_) exec_->close_stdin();
  return !pending_input_.empty();
}

std::optional<uint64_t> Channel::take_input_ack() { return input_.take_ack(); }

void Channel::resize(uint16_t cols, uint16_t rows) {
  if (pty_) pty_->resize(cols, rows);
}

Status Channel::signal(const std::string& name) { return pty_ ? pty_->signal(name) : exec_->signal(name); }

void Channel::on_child_event() {
  if (exit_) return;
  Child& c = pty_ ? pty_->child() : exec_->child();
  auto now = Clock::now();
  if (auto st = c.try_reap()) {
    exit_ = *st;
    reaped_at_ = now;
  } else if (c.adopted() && c.exited()) {
    // Its new parent reaps it within moments; a kernel before 6.15 never tells us the status.
    if (!orphan_exit_seen_) orphan_exit_seen_ = now;
    else if (now - *orphan_exit_seen_ >= kExitGrace) {
      exit_ = ExitStatus{kExitUnknown, ""};
      reaped_at_ = now;
    }
  }
}

int Channel::exit_watch_fd() { return exit_ || orphan_exit_seen_ ? -1 : pidfd(); }

ChannelSnapshot Channel::snapshot(Clock::time_point now) const {
  ChannelSnapshot s;
  s.id = id_;
  s.window = out_.credit.window();
  s.pid = pty_->child().pid();
  s.ring_start = out_.ring.start();
  if (auto v = out_.ring.view(s.ring_start, out_.ring.size())) {
    s.ring.assign(v->first.begin(), v->first.end());
    s.ring.insert(s.ring.end(), v->second.begin(), v->second.end());
  }
  s.acked = out_.credit.acked();
  s.eof = out_.eof;
  s.input_consumed = input_.received() - pending_input_.size();
  s.pending_input = pending_input_;
  if (exit_) {
    s.exited = true;
    s.exit_code = exit_->code;
    s.exit_signal = exit_->signal;
    s.exit_sent = exit_sent_;
    s.reaped_ms_ago = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(now - reaped_at_).count());
  }
  return s;
}

std::unique_ptr<Channel> Channel::restore(const ChannelSnapshot& s, int master, int pidfd, Clock::time_point now) {
  std::unique_ptr<Channel> ch(new Channel(s.id, protocol::ChannelKind::kPty, s.window));
  auto child = std::make_unique<Child>(s.pid, pidfd);
  if (s.exited) {
    ch->exit_ = ExitStatus{s.exit_code, s.exit_signal};
    ch->reaped_at_ = now - std::chrono::milliseconds(std::min<uint64_t>(s.reaped_ms_ago, 3600 * 1000));
    ch->exit_sent_ = s.exit_sent;
  } else if (pidfd < 0) {
    ch->exit_ = ExitStatus{kExitUnknown, ""};  // its pidfd hung up in systemd's store: reaped
    ch->reaped_at_ = now;
  }
  if (ch->exit_) child->mark_exited(*ch->exit_);  // never signal a pid that may be reused by now
  ch->pty_ = PtyProcess::adopt(master, std::move(child));
  Output& o = ch->out_;
  o.present = true;
  o.ring.reset(s.ring_start);
  o.ring.append(s.ring);
  o.credit = protocol::CreditWindow(s.window, s.acked);
  o.eof = s.eof || master < 0;
  ch->input_ = protocol::ReceiveCursor(s.window, s.input_consumed);
  if (!s.pending_input.empty()) {
    (void)ch->input_.on_data(s.input_consumed, s.pending_input.size());
    ch->pending_input_ = s.pending_input;
  }
  ch->on_child_event();  // learns at once whether the shell is still our child (Child::adopted)
  return ch;
}

void Channel::release() {
  if (pty_) pty_->child().release();
}

bool Channel::all_output_done() const {
  for (const Output* o : {&out_, &err_})
    if (o->present && (!o->eof || o->credit.sent() < o->ring.end())) return false;
  return true;
}

std::optional<protocol::Exit> Channel::take_exit(Clock::time_point now) {
  if (!exit_ || exit_sent_) return std::nullopt;
  if (!all_output_done() && now - reaped_at_ < kExitGrace) return std::nullopt;
  exit_sent_ = true;
  return protocol::Exit{id_, exit_->code, exit_->signal};
}

std::optional<protocol::Exit> Channel::sent_exit() const {
  if (!exit_sent_) return std::nullopt;
  return protocol::Exit{id_, exit_->code, exit_->signal};
}

bool Channel::finished() const {
  if (!exit_sent_) return false;
  for (const Output* o : {&out_, &err_})
    if (o->present && o->credit.acked() < o->ring.end()) return false;
  return true;
}

}  // namespace rx::agent
