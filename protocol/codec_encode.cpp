// Encoding half of codec.h: Frame -> msgpack (encode, encode_data) and the size checks encode() makes
// first (check_limits). Apart from decoding because the two share no code, only the format (SPEC.md).
#include "protocol/codec.h"

#include <msgpack.hpp>

#include <optional>
#include <string>

#include "protocol/limits.h"

namespace rx::protocol {
namespace {

// ---------------------------------------------------------------------------------------------
// Encoding. msgpack-c's packer always picks the smallest representation, so one frame has exactly
// one encoding: test vectors round-trip byte for byte.

struct ByteSink {
  std::vector<uint8_t>& out;
  void write(const char* p, size_t n) { out.insert(out.end(), p, p + n); }
};
using Packer = msgpack::packer<ByteSink>;

void put_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

void put_bin(Packer& pk, std::span<const uint8_t> b) {
  pk.pack_bin(static_cast<uint32_t>(b.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<uint32_t>(b.size()));
}

void put_header(Packer& pk, uint32_t fields, FrameType type, uint32_t channel) {
  pk.pack_array(2 + fields);
  pk.pack_uint32(static_cast<uint32_t>(type));
  pk.pack_uint32(channel);
}

void put_host(Packer& pk, const HostInfo& h) {
  bool policy = h.gpu_policy != "open";  // frame.h: absent means "open"
  pk.pack_map(policy ? 8 : 7);
  put_str(pk, "hostname"); put_str(pk, h.hostname);
  put_str(pk, "os"); put_str(pk, h.os);
  put_str(pk, "kernel"); put_str(pk, h.kernel);
  put_str(pk, "arch"); put_str(pk, h.arch);
  put_str(pk, "cpus"); pk.pack_uint32(h.cpus);
  put_str(pk, "mem"); pk.pack_uint64(h.memory_total);
  put_str(pk, "gpus");
  pk.pack_array(static_cast<uint32_t>(h.gpus.size()));
  for (const auto& g : h.gpus) {
    pk.pack_map(4);
    put_str(pk, "index"); pk.pack_uint32(g.index);
    put_str(pk, "uuid"); put_str(pk, g.uuid);
    put_str(pk, "model"); put_str(pk, g.model);
    put_str(pk, "mem"); pk.pack_uint64(g.memory_total);
  }
  if (policy) { put_str(pk, "gpu_policy"); put_str(pk, h.gpu_policy); }
}

struct Encoder {
  Packer& pk;

  void operator()(const Hello& f) {
    put_header(pk, f.labels.empty() ? 6 : 7, FrameType::kHello, f.channel);
    pk.pack_uint32(f.proto_min);
    pk.pack_uint32(f.proto_max);
    put_str(pk, f.agent_version);
    pk.pack_array(static_cast<uint32_t>(f.capabilities.size()));
    for (const auto& c : f.capabilities) put_str(pk, c);
    put_host(pk, f.host);
    pk.pack_array(static_cast<uint32_t>(f.channels.size()));
    for (const auto& c : f.channels) {
      pk.pack_array(2);
      pk.pack_uint32(c.channel);
      pk.pack_uint64(c.input_received);
    }
    if (f.labels.empty()) return;
    pk.pack_map(static_cast<uint32_t>(f.labels.size()));
    for (const auto& [k, v] : f.labels) { put_str(pk, k); put_str(pk, v); }
  }
  void operator()(const Welcome& f) {
    put_header(pk, 5, FrameType::kWelcome, f.channel);
    pk.pack_uint32(f.proto);
    put_str(pk, f.hub_version);
    put_str(pk, f.agent_id);
    if (f.credential) put_str(pk, *f.credential); else pk.pack_nil();
    pk.pack_array(static_cast<uint32_t>(f.resume.size()));
    for (const auto& r : f.resume) {
      pk.pack_array(3);
      pk.pack_uint32(r.channel);
      pk.pack_uint8(static_cast<uint8_t>(r.stream));
      pk.pack_uint64(r.received);
    }
  }
  void operator()(const Open& f) {
    bool who = !f.user.empty() || !f.account.empty();  // frame.h: appended only when set
    put_header(pk, who ? 8 : 6, FrameType::kOpen, f.channel);
    put_str(pk, channel_kind_name(f.kind));
    pk.pack_array(static_cast<uint32_t>(f.argv.size()));
    for (const auto& a : f.argv) put_str(pk, a);
    pk.pack_map(static_cast<uint32_t>(f.env.size()));
    for (const auto& [k, v] : f.env) { put_str(pk, k); put_str(pk, v); }
    pk.pack_uint16(f.cols);
    pk.pack_uint16(f.rows);
    pk.pack_uint32(f.window);
    if (!who) return;
    put_str(pk, f.user);
    put_str(pk, f.account);
  }
  void operator()(const Opened& f) {
    put_header(pk, 1, FrameType::kOpened, f.channel);
    pk.pack_uint32(f.pid);
  }
  void operator()(const Data& f) {
    put_header(pk, 3, FrameType::kData, f.channel);
    pk.pack_uint8(static_cast<uint8_t>(f.stream));
    pk.pack_uint64(f.offset);
    put_bin(pk, f.bytes);
  }
  void operator()(const Ack& f) {
    put_header(pk, 2, FrameType::kAck, f.channel);
    pk.pack_uint8(static_cast<uint8_t>(f.stream));
    pk.pack_uint64(f.offset);
  }
  void operator()(const Resize& f) {
    put_header(pk, 2, FrameType::kResize, f.channel);
    pk.pack_uint16(f.cols);
    pk.pack_uint16(f.rows);
  }
  void operator()(const Signal& f) {
    put_header(pk, 1, FrameType::kSignal, f.channel);
    put_str(pk, f.name);
  }
  void operator()(const Exit& f) {
    put_header(pk, 2, FrameType::kExit, f.channel);
    pk.pack_int32(f.code);
    put_str(pk, f.signal);
  }
  void operator()(const Close& f) {
    put_header(pk, 1, FrameType::kClose, f.channel);
    put_str(pk, f.reason);
  }
  void operator()(const Stats& f) {
    put_header(pk, 1, FrameType::kStats, f.channel);
    pk.pack_map(4);
    put_str(pk, "cpu"); pk.pack_uint32(f.cpu_permille);
    put_str(pk, "mem_used"); pk.pack_uint64(f.memory_used);
    put_str(pk, "mem_total"); pk.pack_uint64(f.memory_total);
    put_str(pk, "gpus");
    pk.pack_array(static_cast<uint32_t>(f.gpus.size()));
    for (const auto& g : f.gpus) {
      pk.pack_map(g.processes.empty() ? 4 : 5);  // frame.h: procs only when there are some
      put_str(pk, "index"); pk.pack_uint32(g.index);
      put_str(pk, "util"); pk.pack_uint32(g.utilization);
      put_str(pk, "mem_used"); pk.pack_uint64(g.memory_used);
      put_str(pk, "mem_total"); pk.pack_uint64(g.memory_total);
      if (g.processes.empty()) continue;
      put_str(pk, "procs");
      pk.pack_array(static_cast<uint32_t>(g.processes.size()));
      for (const auto& p : g.processes) {
        pk.pack_map(6);
        put_str(pk, "pid"); pk.pack_uint32(p.pid);
        put_str(pk, "name"); put_str(pk, p.name);
        put_str(pk, "mem"); pk.pack_uint64(p.memory_used);
        put_str(pk, "account"); put_str(pk, p.account);
        put_str(pk, "user"); put_str(pk, p.user);
        put_str(pk, "channel"); pk.pack_uint32(p.channel);
      }
    }
  }
  void operator()(const ErrorFrame& f) {
    put_header(pk, 2, FrameType::kError, f.channel);
    put_str(pk, f.code);
    put_str(pk, f.message);
  }
  void operator()(const FileOpen& f) {
    put_header(pk, 7, FrameType::kFile, f.channel);
    put_str(pk, f.op);
    put_str(pk, f.path);
    pk.pack_uint32(f.window);
    pk.pack_uint32(f.mode);
    pk.pack_uint32(f.flags);
    put_str(pk, f.user);
    put_str(pk, f.account);
  }
  void operator()(const Unknown& f) {
    // Only useful to tests: an Unknown re-encodes as its bare header.
    pk.pack_array(2);
    pk.pack_uint32(f.type);
    pk.pack_uint32(f.channel);
  }
};

// ---------------------------------------------------------------------------------------------
// Size checks before encoding: the decoder's limits (limits.h), so what we send is what the peer
// accepts. The first field over its limit is named in the error.

struct Checker {
  std::string frame;  // "OPEN", for messages
  std::optional<Error> error;

  void str(const std::string& field, std::string_view s) {
    if (!error && s.size() > kMaxString)
      error = make_error("too_large", frame + "." + field + ": a string of " + std::to_string(s.size()) +
                                          " bytes is over the limit of " + std::to_string(kMaxString) + " bytes");
  }
  void count(const std::string& field, size_t n) {
    if (!error && n > kMaxElements)
      error = make_error("too_large", frame + "." + field + ": " + std::to_string(n) +
                                          " elements are over the limit of " + std::to_string(kMaxElements));
  }
  void bin(const std::string& field, size_t n) {
    if (!error && n > kMaxChunk)
      error = make_error("too_large", frame + "." + field + ": " + std::to_string(n) + " bytes are over the limit of " +
                                          std::to_string(kMaxChunk) + " bytes");
  }
  void host(const HostInfo& h) {
    str("host.hostname", h.hostname);
    str("host.os", h.os);
    str("host.kernel", h.kernel);
    str("host.arch", h.arch);
    count("host.gpus", h.gpus.size());
    for (const auto& g : h.gpus) {
      str("host.gpus.uuid", g.uuid);
      str("host.gpus.model", g.model);
    }
    str("host.gpu_policy", h.gpu_policy);
  }

  void operator()(const Hello& f) {
    str("agent_version", f.agent_version);
    count("capabilities", f.capabilities.size());
    for (const auto& c : f.capabilities) str("capabilities", c);
    host(f.host);
    count("channels", f.channels.size());
    count("labels", f.labels.size());
    for (const auto& [k, v] : f.labels) {
      str("labels", k);
      str("labels." + k.substr(0, 64), v);
    }
  }
  void operator()(const Welcome& f) {
    str("hub_version", f.hub_version);
    str("agent_id", f.agent_id);
    if (f.credential) str("credential", *f.credential);
    count("resume", f.resume.size());
  }
  void operator()(const Open& f) {
    count("argv", f.argv.size());
    for (size_t i = 0; i < f.argv.size(); ++i) str("argv[" + std::to_string(i) + "]", f.argv[i]);
    count("env", f.env.size());
    for (const auto& [k, v] : f.env) {
      str("env", k);
      str("env." + k.substr(0, 64), v);
    }
    str("user", f.user);
    str("account", f.account);
  }
  void operator()(const Opened&) {}
  void operator()(const Data& f) { bin("bytes", f.bytes.size()); }
  void operator()(const Ack&) {}
  void operator()(const Resize&) {}
  void operator()(const Signal& f) { str("signal", f.name); }
  void operator()(const Exit& f) { str("signal", f.signal); }
  void operator()(const Close& f) { str("reason", f.reason); }
  void operator()(const Stats& f) {
    count("stats.gpus", f.gpus.size());
    for (const auto& g : f.gpus) {
      count("stats.gpus.procs", g.processes.size());
      for (const auto& p : g.processes) {
        str("stats.gpus.procs.name", p.name);
        str("stats.gpus.procs.account", p.account);
        str("stats.gpus.procs.user", p.user);
      }
    }
  }
  void operator()(const ErrorFrame& f) {
    str("code", f.code);
    str("message", f.message);
  }
  void operator()(const FileOpen& f) {
    str("op", f.op);
    str("path", f.path);
    if (!error && f.path.size() > kMaxFilePath)
      error = make_error("too_large", frame + ".path: " + std::to_string(f.path.size()) +
                                          " bytes are over the limit of " + std::to_string(kMaxFilePath) + " bytes");
    str("user", f.user);
    str("account", f.account);
  }
  void operator()(const Unknown&) {}
};

}  // namespace

Status check_limits(const Frame& frame) {
  auto bytes = encode(frame);
  if (!bytes) return bytes.error();
  return Ok{};
}

Result<std::vector<uint8_t>> encode(const Frame& frame, size_t headroom) {
  Checker c{std::string(frame_type_name(frame_type(frame))), std::nullopt};
  std::visit(c, frame);
  if (c.error) return *c.error;
  std::vector<uint8_t> out(headroom);
  ByteSink sink{out};
  Packer pk(sink);
  std::visit(Encoder{pk}, frame);
  if (out.size() - headroom > kMaxFrameBytes)
    return make_error("frame_too_large", std::string(frame_type_name(frame_type(frame))) + ": the frame would be " +
                                             std::to_string(out.size() - headroom) + " bytes, over the limit of " +
                                             std::to_string(kMaxFrameBytes) + " bytes");
  return out;
}

std::vector<uint8_t> encode_data(uint32_t channel, Stream stream, uint64_t offset, std::span<const uint8_t> bytes,
                                 size_t headroom) {
  return encode_data(channel, stream, offset, bytes, {}, headroom);
}

std::vector<uint8_t> encode_data(uint32_t channel, Stream stream, uint64_t offset, std::span<const uint8_t> first,
                                 std::span<const uint8_t> second, size_t headroom) {
  size_t n = first.size() + second.size();
  std::vector<uint8_t> out;
  out.reserve(headroom + n + 24);  // header is at most 1+1+5+1+9+5 bytes
  out.resize(headroom);
  ByteSink sink{out};
  Packer pk(sink);
  put_header(pk, 3, FrameType::kData, channel);
  pk.pack_uint8(static_cast<uint8_t>(stream));
  pk.pack_uint64(offset);
  pk.pack_bin(static_cast<uint32_t>(n));
  out.insert(out.end(), first.begin(), first.end());
  out.insert(out.end(), second.begin(), second.end());
  return out;
}

}  // namespace rx::protocol
