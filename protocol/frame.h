// The frames of the agent link (subprotocol rexec.agent.v1). One WebSocket binary message is one
// frame: a msgpack array [type, channel, ...fields]. Type numbers are append-only; the msgpack
// shape of each frame is written beside its struct and is the normative spec (SPEC.md explains).
// Decoders ignore extra trailing elements, so a field may be appended without a version bump.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rx::protocol {

enum class FrameType : uint32_t {
  kHello = 1,
  kWelcome = 2,
  kOpen = 3,
  kOpened = 4,
  kData = 5,
  kAck = 6,
  kResize = 7,
  kSignal = 8,
  kExit = 9,
  kClose = 10,
  kStats = 11,
  kError = 12,
  kFile = 13,
};

// Byte streams of a channel. Offsets count bytes per (channel, stream) from 0.
enum class Stream : uint8_t {
  kInput = 0,   // hub -> agent: keystrokes (pty) or stdin (exec)
  kOutput = 1,  // agent -> hub: pty output, or stdout of an exec
  kStderr = 2,  // agent -> hub: stderr of an exec
};
inline constexpr uint8_t kMaxStream = 2;

// {"index":u32, "uuid":str, "model":str, "mem":u64 bytes}
struct GpuInfo {
  uint32_t index = 0;
  std::string uuid;
  std::string model;
  uint64_t memory_total = 0;
  bool operator==(const GpuInfo&) const = default;
};

// {"hostname":str, "os":str, "kernel":str, "arch":str, "cpus":u32, "mem":u64 bytes, "gpus":[GpuInfo],
//  "gpu_policy":"open"|"lease-required"}
// Unknown keys are ignored and missing keys keep their defaults, so the map can grow freely.
// `gpu_policy` is sent only when it is not "open", so a HELLO of an open machine is byte for byte
// what agents before GPU sharing send (and those mean "open").
struct HostInfo {
  std::string hostname;
  std::string os;      // PRETTY_NAME from os-release
  std::string kernel;  // uname -r
  std::string arch;    // uname -m
  uint32_t cpus = 0;
  uint64_t memory_total = 0;
  std::vector<GpuInfo> gpus;
  std::string gpu_policy = "open";  // "lease-required": a terminal without a GPU lease sees no GPU
  bool operator==(const HostInfo&) const = default;
};

// [channel:u32, input_received:u64]  a channel alive on the agent and how much input it has.
struct ChannelState {
  uint32_t channel = 0;
  uint64_t input_received = 0;
  bool operator==(const ChannelState&) const = default;
};

// [channel:u32, stream:u8, received:u64]  the hub has every byte of that stream below `received`.
struct StreamResume {
  uint32_t channel = 0;
  Stream stream = Stream::kOutput;
  uint64_t received = 0;
  bool operator==(const StreamResume&) const = default;
};

// [1, 0, proto_min:u32, proto_max:u32, agent_version:str, caps:[str], host:HostInfo, channels:[ChannelState],
//  labels:{str:str}]
// `labels` (protocol/labels.h) is appended: sent only when there are labels, so a HELLO without
// them is byte for byte what agents before labels send, and such a HELLO means "no labels".
struct Hello {
  uint32_t channel = 0;
  uint32_t proto_min = 0;
  uint32_t proto_max = 0;
  std::string agent_version;
  std::vector<std::string> capabilities;
  HostInfo host;
  std::vector<ChannelState> channels;
  std::map<std::string, std::string> labels;
  bool operator==(const Hello&) const = default;
};

// [2, 0, proto:u32, hub_version:str, agent_id:str, credential:str|nil, resume:[StreamResume]]
// `credential` is set once, when the agent enrolled on this connection; the agent stores it.
struct Welcome {
  uint32_t channel = 0;
  uint32_t proto = 0;
  std::string hub_version;
  std::string agent_id;
  std::optional<std::string> credential;
  std::vector<StreamResume> resume;
  bool operator==(const Welcome&) const = default;
};

enum class ChannelKind : uint8_t { kPty = 0, kExec = 1 };

// [3, ch, kind:"pty"|"exec", argv:[str], env:{str:str}, cols:u16, rows:u16, window:u32, user:str, account:str]
// Empty argv on a pty channel means the agent's login shell. `user` (the Rexec user the channel is
// for) and `account` (the local account the hub asks for) are appended: sent only when one is
// non-empty, so an OPEN without them is byte for byte the 6-field frame; a missing one means "".
struct Open {
  uint32_t channel = 0;
  ChannelKind kind = ChannelKind::kPty;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  uint16_t cols = 80;
  uint16_t rows = 24;
  uint32_t window = 0;
  // "= {}": members with an initializer do not trip -Wmissing-field-initializers, so the
  // positional Open{...} of code written before these fields still builds.
  std::string user = {};
  std::string account = {};
  bool operator==(const Open&) const = default;
};

// [4, ch, pid:u32]
struct Opened {
  uint32_t channel = 0;
  uint32_t pid = 0;
  bool operator==(const Opened&) const = default;
};

// [5, ch, stream:u8, offset:u64, bytes:bin]  offset = stream offset of bytes[0]
struct Data {
  uint32_t channel = 0;
  Stream stream = Stream::kOutput;
  uint64_t offset = 0;
  std::vector<uint8_t> bytes;
  bool operator==(const Data&) const = default;
};

// [6, ch, stream:u8, offset:u64]  cumulative: every byte below offset was received and consumed
struct Ack {
  uint32_t channel = 0;
  Stream stream = Stream::kOutput;
  uint64_t offset = 0;
  bool operator==(const Ack&) const = default;
};

// [7, ch, cols:u16, rows:u16]
struct Resize {
  uint32_t channel = 0;
  uint16_t cols = 0;
  uint16_t rows = 0;
  bool operator==(const Resize&) const = default;
};

// [8, ch, signal:str]  a name without "SIG": "INT", "TERM", "KILL", "HUP", ... (portable, unlike numbers)
struct Signal {
  uint32_t channel = 0;
  std::string name;
  bool operator==(const Signal&) const = default;
};

// [9, ch, code:i32, signal:str]  exit status; when killed by a signal, code = 128+n and signal names it
struct Exit {
  uint32_t channel = 0;
  int32_t code = 0;
  std::string signal;
  bool operator==(const Exit&) const = default;
};

// [10, ch, reason:str]  hub->agent: end the channel; agent->hub: the channel is gone, nothing follows
struct Close {
  uint32_t channel = 0;
  std::string reason;
  bool operator==(const Close&) const = default;
};

// {"pid":u32, "name":str, "mem":u64 bytes, "account":str, "user":str, "channel":u32}
// A compute process on a GPU (nvidia-smi --query-compute-apps). `account` is the local user name of
// its real uid ("#<uid>" when the uid has no name, "" when the process is gone); `user` the Rexec
// user --user-map maps that account to ("" none); `channel` the agent channel whose process tree
// holds it (0 none).
struct GpuProcess {
  uint32_t pid = 0;
  std::string name;
  uint64_t memory_used = 0;
  std::string account;
  std::string user;
  uint32_t channel = 0;
  bool operator==(const GpuProcess&) const = default;
};

// {"index":u32, "util":u32 percent, "mem_used":u64 bytes, "mem_total":u64 bytes, "procs":[GpuProcess]}
// `procs` is sent only when non-empty, so the STATS of a machine without GPU processes is byte for
// byte the frame of agents before it.
struct GpuStats {
  uint32_t index = 0;
  uint32_t utilization = 0;
  uint64_t memory_used = 0;
  uint64_t memory_total = 0;
  std::vector<GpuProcess> processes = {};  // "= {}": see Open::user
  bool operator==(const GpuStats&) const = default;
};

// [11, 0, {"cpu":u32 per-mille of all CPUs busy, "mem_used":u64, "mem_total":u64, "gpus":[GpuStats]}]
// Per-mille integers rather than floats: exact on the wire and in JSON.
struct Stats {
  uint32_t channel = 0;
  uint32_t cpu_permille = 0;
  uint64_t memory_used = 0;
  uint64_t memory_total = 0;
  std::vector<GpuStats> gpus;
  bool operator==(const Stats&) const = default;
};

// [12, ch, code:str, message:str]  something the peer sent was refused; ch 0 = about the link
struct ErrorFrame {
  uint32_t channel = 0;
  std::string code;
  std::string message;
  bool operator==(const ErrorFrame&) const = default;
};

// [13, ch, op:"get"|"put"|"list"|"delete", path:str, window:u32, mode:u32, flags:u32, user:str, account:str]
// hub -> agent: a file channel (SPEC.md 1.10). The agent runs the operation as the account an OPEN
// with the same user/account would run as, and answers as for an exec channel: OPENED, a status
// line on stream 2, the file or listing on stream 1 (credit as for output), the upload on stream
// 0 (ended by an empty DATA), EXIT (0: done), CLOSE. `path` is relative to that account's home
// unless absolute; `mode` the permission bits of an uploaded file (0: 0644); `flags` kFileOverwrite.
struct FileOpen {
  uint32_t channel = 0;
  std::string op;
  std::string path;
  uint32_t window = 0;
  uint32_t mode = 0;
  uint32_t flags = 0;
  std::string user = {};
  std::string account = {};
  bool operator==(const FileOpen&) const = default;
};
inline constexpr uint32_t kFileOverwrite = 1;  // put: replace an existing file
inline constexpr size_t kMaxFilePath = 4096;   // bytes of FILE.path (Linux PATH_MAX)

// A well-formed frame of a type this build does not know: the receiver ignores it.
struct Unknown {
  uint32_t type = 0;
  uint32_t channel = 0;
  bool operator==(const Unknown&) const = default;
};

using Frame = std::variant<Hello, Welcome, Open, Opened, Data, Ack, Resize, Signal, Exit, Close, Stats,
                           ErrorFrame, FileOpen, Unknown>;

// "HELLO", "DATA", ... ; "UNKNOWN" for types this build does not know.
std::string_view frame_type_name(uint32_t type);
// The wire type number of a frame (for Unknown, the number it arrived with).
uint32_t frame_type(const Frame& frame);
uint32_t frame_channel(const Frame& frame);

std::string_view channel_kind_name(ChannelKind kind);  // "pty" | "exec"

}  // namespace rx::protocol
