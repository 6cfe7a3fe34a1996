#include "agent/handover.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "protocol/limits.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace rx::agent {
namespace {

constexpr char kMagic[4] = {'R', 'X', 'H', 'O'};
constexpr uint32_t kMaxChannels = 1 << 16;
constexpr const char* kExecFdsVar = "REXEC_HANDOVER_FDS";

class Writer {
 public:
  void u8(uint8_t v) { out.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
  }
  void bytes(std::span<const uint8_t> b) {
    u64(b.size());
    out.insert(out.end(), b.begin(), b.end());
  }
  void str(const std::string& s) { bytes(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool ok() const { return ok_; }
  size_t left() const { return in_.size() - pos_; }
  uint8_t u8() { return ok_ && need(1) ? in_[pos_++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    if (need(4))
      for (int i = 0; i < 4; ++i) v |= uint32_t(in_[pos_++]) << (8 * i);
    return v;
  }
  uint64_t u64() {
    uint64_t v = 0;
    if (need(8))
      for (int i = 0; i < 8; ++i) v |= uint64_t(in_[pos_++]) << (8 * i);
    return v;
  }
  std::vector<uint8_t> bytes(size_t max) {
    uint64_t n = u64();
    if (!ok_ || n > max || !need(size_t(n))) {
      ok_ = false;
      return {};
    }
    std::vector<uint8_t> b(in_.begin() + long(pos_), in_.begin() + long(pos_ + n));
    pos_ += size_t(n);
    return b;
  }
  std::string str(size_t max) {
    auto b = bytes(max);
    return std::string(b.begin(), b.end());
  }
  std::span<const uint8_t> take(size_t n) {
    if (!need(n)) return {};
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  bool need(size_t n) {
    if (ok_ && left() >= n) return true;
    ok_ = false;
    return false;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

Error bad(const std::string& why) { return Error{"bad_handover", "the predecessor's handover state " + why}; }

void encode_channel(Writer& w, const ChannelSnapshot& c) {
  w.u32(c.id);
  w.u32(c.window);
  w.u32(uint32_t(c.pid));
  w.u64(c.ring_start);
  w.bytes(c.ring);
  w.u64(c.acked);
  w.u8(c.eof);
  w.u64(c.input_consumed);
  w.bytes(c.pending_input);
  w.u8(c.exited);
  w.u32(uint32_t(c.exit_code));
  w.str(c.exit_signal);
  w.u8(c.exit_sent);
  w.u64(c.reaped_ms_ago);
}

Result<ChannelSnapshot> decode_channel(std::span<const uint8_t> record) {
  Reader r(record);
  ChannelSnapshot c;
  c.id = r.u32();
  c.window = r.u32();
  c.pid = int32_t(r.u32());
  c.ring_start = r.u64();
  c.ring = r.bytes(protocol::kReplayBytes);
  c.acked = r.u64();
  c.eof = r.u8() != 0;
  c.input_consumed = r.u64();
  c.pending_input = r.bytes(protocol::kMaxWindow);
  c.exited = r.u8() != 0;
  c.exit_code = int32_t(r.u32());
  c.exit_signal = r.str(15);
  c.exit_sent = r.u8() != 0;
  c.reaped_ms_ago = r.u64();
  // Whatever follows in the record is a newer agent's addition: skipped.
  if (!r.ok()) return bad("has a truncated or oversized channel record");
  uint64_t ring_end = c.ring_start + c.ring.size();
  if (c.id == 0) return bad("names channel 0");
  if (c.window < protocol::kMinWindow || c.window > protocol::kMaxWindow)
    return bad("gives channel " + std::to_string(c.id) + " a window of " + std::to_string(c.window));
  if (c.pid <= 0) return bad("gives channel " + std::to_string(c.id) + " no pid");
  if (ring_end < c.ring_start || c.acked > ring_end)
    return bad("has channel " + std::to_string(c.id) + " acknowledged beyond its output");
  if (c.input_consumed + c.pending_input.size() < c.input_consumed)
    return bad("overflows channel " + std::to_string(c.id) + "'s input offset");
  return c;
}

void set_cloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 255) return false;
  for (char c : n)
    if (c < 0x21 || c > 0x7e || c == ':' || c == ',' || c == '=') return false;
  return true;
}

}  // namespace

std::vector<uint8_t> encode_handover(const HandoverState& state) {
  Writer w;
  w.out.insert(w.out.end(), kMagic, kMagic + 4);
  w.u32(kHandoverVersion);
  w.u32(uint32_t(state.channels.size()));
  for (const auto& c : state.channels) {
    Writer record;
    encode_channel(record, c);
    w.u32(uint32_t(record.out.size()));
    w.out.insert(w.out.end(), record.out.begin(), record.out.end());
  }
  return std::move(w.out);
}

Result<HandoverState> decode_handover(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  auto magic = r.take(4);
  if (!r.ok() || std::memcmp(magic.data(), kMagic, 4) != 0) return bad("is not one (no RXHO magic)");
  uint32_t version = r.u32();
  if (!r.ok()) return bad("is truncated");
  if (version != kHandoverVersion)
    return bad("is version " + std::to_string(version) + "; this agent reads version " +
               std::to_string(kHandoverVersion));
  uint32_t count = r.u32();
  if (!r.ok() || count > kMaxChannels) return bad("has a bad channel count");
  HandoverState state;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = r.u32();
    auto record = r.take(len);
    if (!r.ok()) return bad("is truncated in channel record " + std::to_string(i));
    auto c = decode_channel(record);
    if (!c) return c.error();
    for (const auto& seen : state.channels)
      if (seen.id == c->id) return bad("lists channel " + std::to_string(c->id) + " twice");
    state.channels.push_back(std::move(c).value());
  }
  if (r.left() != 0) return bad("has " + std::to_string(r.left()) + " bytes after its last channel");
  return state;
}

std::string master_fd_name(uint32_t channel) { return "rexec.c" + std::to_string(channel) + ".pty"; }
std::string pid_fd_name(uint32_t channel) { return "rexec.c" + std::to_string(channel) + ".pid"; }

Result<int> write_state_fd(std::span<const uint8_t> bytes) {
  int fd = ::memfd_create("rexec-handover", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return make_error("handover_failed", std::string("memfd_create: ") + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      return make_error("handover_failed", std::string("writing the handover state: ") + std::strerror(e));
    }
    done += size_t(n);
  }
  // Sealed: what the successor reads is what was written, whoever else holds the fd meanwhile.
  (void)::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

Result<std::vector<uint8_t>> read_state_fd(int fd, size_t max_bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error("bad_handover", std::string("fstat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return make_error("bad_handover", "the handover state fd is not a memfd or file");
  if (size_t(st.st_size) > max_bytes)
    return make_error("bad_handover", "the handover state is " + std::to_string(st.st_size) + " bytes");
  std::vector<uint8_t> out(size_t(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("bad_handover", "the handover state ends early");
    done += size_t(n);
  }
  return out;
}

InheritedFds InheritedFds::take_from_environment() {
  InheritedFds in;
  const char* listen_pid = std::getenv("LISTEN_PID");
  const char* listen_fds = std::getenv("LISTEN_FDS");
  const char* listen_names = std::getenv("LISTEN_FDNAMES");
  const char* exec_fds = std::getenv(kExecFdsVar);
  if (listen_fds && listen_pid && std::strtol(listen_pid, nullptr, 10) == long(::getpid())) {
    // sd_listen_fds_with_names(): LISTEN_FDS descriptors from 3 on, names colon-separated.
    long n = std::strtol(listen_fds, nullptr, 10);
    std::string names = listen_names ? listen_names : "";
    in.from_systemd_ = true;
    for (long i = 0; i < n && i < 65536; ++i) {
      int fd = int(3 + i);
      auto colon = names.find(':');
      std::string name = names.substr(0, colon);
      names = colon == std::string::npos ? "" : names.substr(colon + 1);
      if (::fcntl(fd, F_GETFD) < 0) continue;
      set_cloexec(fd, true);
      if (!valid_name(name) || in.fds_.count(name)) {
        ::close(fd);  // not one of ours (or nameless): nothing will take it
        continue;
      }
      in.fds_[name] = fd;
    }
  } else if (exec_fds) {
    // name=fd,name=fd: only descriptors that are open, each once.
    std::string list = exec_fds;
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string item = list.substr(0, comma);
      list = comma == std::string::npos ? "" : list.substr(comma + 1);
      auto eq = item.find('=');
      char* end = nullptr;
      long fd = eq == std::string::npos ? -1 : std::strtol(item.c_str() + eq + 1, &end, 10);
      std::string name = item.substr(0, eq);
      if (fd < 3 || !end || *end || !valid_name(name) || in.fds_.count(name) || ::fcntl(int(fd), F_GETFD) < 0) {
        in.problem = std::string(kExecFdsVar) + " has a bad entry \"" + item + "\"";
        continue;
      }
      set_cloexec(int(fd), true);
      in.fds_[name] = int(fd);
    }
  }
  for (const char* v : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", kExecFdsVar}) ::unsetenv(v);
  return in;
}

InheritedFds::~InheritedFds() {
  for (auto& [name, fd] : fds_) ::close(fd);
}

std::vector<std::string> InheritedFds::names() const {
  std::vector<std::string> out;
  for (const auto& [name, fd] : fds_) out.push_back(name);
  return out;
}

int InheritedFds::take(const std::string& name) {
  auto it = fds_.find(name);
  if (it == fds_.end()) return -1;
  int fd = it->second;
  fds_.erase(it);
  return fd;
}

Status reexec(const std::string& path, const std::vector<std::string>& argv, std::vector<std::string> env,
              const std::vector<std::pair<std::string, int>>& fds) {
  if (argv.empty()) return make_error("reexec_failed", "no argv to restart with");
  if (::access(path.c_str(), X_OK) != 0)
    return make_error("reexec_failed", "cannot run " + path + ": " + std::strerror(errno));
  std::string list;
  for (const auto& [name, fd] : fds) list += (list.empty() ? "" : ",") + name + "=" + std::to_string(fd);
  env.push_back(std::string(kExecFdsVar) + "=" + list);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  // Everything from 3 up closes at exec (lws's sockets and pipes, the watches' dups) except the
  // handover's own fds. Flags only: if the exec fails, every descriptor is still there.
  std::vector<int> was_cloexec;
  for (const auto& [name, fd] : fds) was_cloexec.push_back(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  for (const auto& [name, fd] : fds) set_cloexec(fd, false);
  ::execve(path.c_str(), cargv.data(), cenv.data());
  int e = errno;
  for (size_t i = 0; i < fds.size(); ++i) set_cloexec(fds[i].second, was_cloexec[i] != 0);
  return make_error("reexec_failed", "exec " + path + ": " + std::strerror(e));
}

}  // namespace rx::agent
