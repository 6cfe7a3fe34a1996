#include "protocol/codec.h"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <limits>
#include <new>
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
  void operator()(const Unknown&) {}
};

// ---------------------------------------------------------------------------------------------
// Decoding. msgpack-c throws; everything below throws Failure, and decode() turns both into an
// Error before returning, so no exception leaves this file.

struct Failure {
  Error error;
};

[[noreturn]] void fail(std::string code, std::string message) {
  throw Failure{Error{std::move(code), std::move(message)}};
}

std::string_view type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER: return "unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER: return "negative integer";
    case msgpack::type::FLOAT32: case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "bin";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "ext";
  }
  return "unknown";
}

[[noreturn]] void wrong_type(const std::string& field, std::string_view want, const msgpack::object& o) {
  fail("bad_type", field + ": expected " + std::string(want) + ", got " + std::string(type_name(o)));
}

uint64_t get_uint(const msgpack::object& o, const std::string& field, uint64_t max) {
  if (o.type == msgpack::type::NEGATIVE_INTEGER)
    fail("out_of_range", field + ": " + std::to_string(o.via.i64) + " is negative; must be 0.." + std::to_string(max));
  if (o.type != msgpack::type::POSITIVE_INTEGER) wrong_type(field, "unsigned integer", o);
  if (o.via.u64 > max)
    fail("out_of_range", field + ": " + std::to_string(o.via.u64) + " is over the maximum " + std::to_string(max));
  return o.via.u64;
}

int64_t get_int(const msgpack::object& o, const std::string& field, int64_t min, int64_t max) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    if (o.via.u64 > static_cast<uint64_t>(max))
      fail("out_of_range", field + ": " + std::to_string(o.via.u64) + " is over the maximum " + std::to_string(max));
    return static_cast<int64_t>(o.via.u64);
  }
  if (o.type != msgpack::type::NEGATIVE_INTEGER) wrong_type(field, "integer", o);
  if (o.via.i64 < min)
    fail("out_of_range", field + ": " + std::to_string(o.via.i64) + " is under the minimum " + std::to_string(min));
  return o.via.i64;
}

std::string get_str(const msgpack::object& o, const std::string& field) {
  if (o.type != msgpack::type::STR) wrong_type(field, "string", o);
  return std::string(o.via.str.ptr, o.via.str.size);
}

const msgpack::object_array& get_array(const msgpack::object& o, const std::string& field, uint32_t min_size = 0) {
  if (o.type != msgpack::type::ARRAY) wrong_type(field, "array", o);
  if (o.via.array.size < min_size)
    fail("missing_field", field + ": expected at least " + std::to_string(min_size) + " elements, got " +
                              std::to_string(o.via.array.size));
  return o.via.array;
}

const msgpack::object_map& get_map(const msgpack::object& o, const std::string& field) {
  if (o.type != msgpack::type::MAP) wrong_type(field, "map", o);
  for (uint32_t i = 0; i < o.via.map.size; ++i)
    if (o.via.map.ptr[i].key.type != msgpack::type::STR) wrong_type(field + " key", "string", o.via.map.ptr[i].key);
  return o.via.map;
}

std::string_view key_of(const msgpack::object_kv& kv) {
  return std::string_view(kv.key.via.str.ptr, kv.key.via.str.size);
}

Stream get_stream(const msgpack::object& o, const std::string& field) {
  return static_cast<Stream>(get_uint(o, field, kMaxStream));
}

uint16_t get_dimension(const msgpack::object& o, const std::string& field) {
  auto v = static_cast<uint16_t>(get_uint(o, field, std::numeric_limits<uint16_t>::max()));
  if (v == 0) fail("bad_value", field + ": must be at least 1");
  return v;
}

// Positional fields of one frame: the frame name prefixes every error ("DATA.offset: ...").
// The names are copied in: an initializer_list's array would not outlive the constructor call.
class Fields {
 public:
  Fields(const msgpack::object_array& a, std::string_view name, std::initializer_list<const char*> names)
      : a_(a), name_(name), count_(names.size()) {
    std::copy(names.begin(), names.end(), names_.begin());
    if (a_.size < 2 + count_)
      fail("missing_field", std::string(name_) + ": expected " + std::to_string(2 + count_) + " elements, got " +
                                std::to_string(a_.size) + " (missing " + names_[a_.size - 2] + ")");
  }
  // Field i (0 = first after type and channel) and its name for messages.
  const msgpack::object& at(size_t i) const { return a_.ptr[2 + i]; }
  std::string name(size_t i) const { return std::string(name_) + "." + names_[i]; }

 private:
  const msgpack::object_array& a_;
  std::string_view name_;
  size_t count_;
  std::array<const char*, 8> names_{};  // the longest frame has 6 fields
};

// Calls fn(key, value, "field.key") for every entry of the map `o`.
template <typename F>
void each_entry(const msgpack::object& o, const std::string& field, F fn) {
  for (const auto& kv : std::span(get_map(o, field).ptr, o.via.map.size)) {
    auto k = key_of(kv);
    fn(k, kv.val, field + "." + std::string(k));
  }
}

// Calls fn(element, "field[i]") for every element of the array `o`.
template <typename F>
void each_element(const msgpack::object& o, const std::string& field, F fn) {
  const auto& a = get_array(o, field);
  for (uint32_t i = 0; i < a.size; ++i) fn(a.ptr[i], field + "[" + std::to_string(i) + "]");
}

HostInfo get_host(const msgpack::object& o, const std::string& field) {
  HostInfo h;
  each_entry(o, field, [&](std::string_view k, const msgpack::object& v, const std::string& f) {
    if (k == "hostname") h.hostname = get_str(v, f);
    else if (k == "os") h.os = get_str(v, f);
    else if (k == "kernel") h.kernel = get_str(v, f);
    else if (k == "arch") h.arch = get_str(v, f);
    else if (k == "cpus") h.cpus = static_cast<uint32_t>(get_uint(v, f, UINT32_MAX));
    else if (k == "mem") h.memory_total = get_uint(v, f, UINT64_MAX);
    else if (k == "gpus")
      each_element(v, f, [&](const msgpack::object& e, const std::string& ef) {
        GpuInfo g;
        each_entry(e, ef, [&](std::string_view gk, const msgpack::object& gv, const std::string& gf) {
          if (gk == "index") g.index = static_cast<uint32_t>(get_uint(gv, gf, UINT32_MAX));
          else if (gk == "uuid") g.uuid = get_str(gv, gf);
          else if (gk == "model") g.model = get_str(gv, gf);
          else if (gk == "mem") g.memory_total = get_uint(gv, gf, UINT64_MAX);
        });
        h.gpus.push_back(std::move(g));
      });
    else if (k == "gpu_policy") h.gpu_policy = get_str(v, f);
  });
  return h;
}

std::vector<GpuProcess> get_gpu_processes(const msgpack::object& o, const std::string& field) {
  std::vector<GpuProcess> out;
  each_element(o, field, [&](const msgpack::object& e, const std::string& ef) {
    GpuProcess p;
    each_entry(e, ef, [&](std::string_view k, const msgpack::object& v, const std::string& f) {
      if (k == "pid") p.pid = static_cast<uint32_t>(get_uint(v, f, UINT32_MAX));
      else if (k == "name") p.name = get_str(v, f);
      else if (k == "mem") p.memory_used = get_uint(v, f, UINT64_MAX);
      else if (k == "account") p.account = get_str(v, f);
      else if (k == "user") p.user = get_str(v, f);
      else if (k == "channel") p.channel = static_cast<uint32_t>(get_uint(v, f, UINT32_MAX));
    });
    out.push_back(std::move(p));
  });
  return out;
}

Stats get_stats(const msgpack::object& o, const std::string& field) {
  Stats s;
  each_entry(o, field, [&](std::string_view k, const msgpack::object& v, const std::string& f) {
    if (k == "cpu") s.cpu_permille = static_cast<uint32_t>(get_uint(v, f, 1000));
    else if (k == "mem_used") s.memory_used = get_uint(v, f, UINT64_MAX);
    else if (k == "mem_total") s.memory_total = get_uint(v, f, UINT64_MAX);
    else if (k == "gpus")
      each_element(v, f, [&](const msgpack::object& e, const std::string& ef) {
        GpuStats g;
        each_entry(e, ef, [&](std::string_view gk, const msgpack::object& gv, const std::string& gf) {
          if (gk == "index") g.index = static_cast<uint32_t>(get_uint(gv, gf, UINT32_MAX));
          else if (gk == "util") g.utilization = static_cast<uint32_t>(get_uint(gv, gf, 100));
          else if (gk == "mem_used") g.memory_used = get_uint(gv, gf, UINT64_MAX);
          else if (gk == "mem_total") g.memory_total = get_uint(gv, gf, UINT64_MAX);
          else if (gk == "procs") g.processes = get_gpu_processes(gv, gf);
        });
        s.gpus.push_back(std::move(g));
      });
  });
  return s;
}

void require_link_channel(uint32_t channel, std::string_view name) {
  if (channel != 0)
    fail("bad_value", std::string(name) + ".channel: must be 0 (the link itself), got " + std::to_string(channel));
}

// A signal name: 1-15 upper-case letters or digits ("INT", "USR1", "RTMIN1"). The agent maps it.
std::string get_signal_name(const msgpack::object& o, const std::string& field, bool allow_empty) {
  std::string s = get_str(o, field);
  if (s.empty() && allow_empty) return s;
  bool ok = !s.empty() && s.size() < 16;
  for (char c : s) ok = ok && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
  if (!ok) fail("bad_value", field + ": \"" + s.substr(0, 32) + "\" is not a signal name like INT or TERM");
  return s;
}

Frame decode_fields(uint32_t type, uint32_t channel, const msgpack::object_array& a) {
  auto name = frame_type_name(type);
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello: {
      Fields f(a, name, {"proto_min", "proto_max", "agent_version", "capabilities", "host", "channels"});
      require_link_channel(channel, name);
      Hello h;
      h.proto_min = static_cast<uint32_t>(get_uint(f.at(0), f.name(0), UINT32_MAX));
      h.proto_max = static_cast<uint32_t>(get_uint(f.at(1), f.name(1), UINT32_MAX));
      if (h.proto_min > h.proto_max)
        fail("bad_value", "HELLO: proto_min " + std::to_string(h.proto_min) + " is above proto_max " +
                              std::to_string(h.proto_max));
      h.agent_version = get_str(f.at(2), f.name(2));
      each_element(f.at(3), f.name(3), [&](const msgpack::object& e, const std::string& ef) {
        h.capabilities.push_back(get_str(e, ef));
      });
      h.host = get_host(f.at(4), f.name(4));
      each_element(f.at(5), f.name(5), [&](const msgpack::object& e, const std::string& ef) {
        const auto& c = get_array(e, ef, 2);
        h.channels.push_back({static_cast<uint32_t>(get_uint(c.ptr[0], ef + ".channel", UINT32_MAX)),
                              get_uint(c.ptr[1], ef + ".input_received", UINT64_MAX)});
      });
      if (a.size > 8)  // labels, appended (frame.h): absent from agents that predate them
        each_entry(a.ptr[8], std::string(name) + ".labels", [&](std::string_view k, const msgpack::object& v, const std::string& vf) {
          h.labels[std::string(k)] = get_str(v, vf);
        });
      return h;
    }
    case FrameType::kWelcome: {
      Fields f(a, name, {"proto", "hub_version", "agent_id", "credential", "resume"});
      require_link_channel(channel, name);
      Welcome w;
      w.proto = static_cast<uint32_t>(get_uint(f.at(0), f.name(0), UINT32_MAX));
      w.hub_version = get_str(f.at(1), f.name(1));
      w.agent_id = get_str(f.at(2), f.name(2));
      if (f.at(3).type != msgpack::type::NIL) w.credential = get_str(f.at(3), f.name(3));
      each_element(f.at(4), f.name(4), [&](const msgpack::object& e, const std::string& ef) {
        const auto& r = get_array(e, ef, 3);
        w.resume.push_back({static_cast<uint32_t>(get_uint(r.ptr[0], ef + ".channel", UINT32_MAX)),
                            get_stream(r.ptr[1], ef + ".stream"), get_uint(r.ptr[2], ef + ".received", UINT64_MAX)});
      });
      return w;
    }
    case FrameType::kOpen: {
      Fields f(a, name, {"kind", "argv", "env", "cols", "rows", "window"});
      Open o;
      o.channel = channel;
      std::string kind = get_str(f.at(0), f.name(0));
      if (kind == "pty") o.kind = ChannelKind::kPty;
      else if (kind == "exec") o.kind = ChannelKind::kExec;
      else fail("bad_value", f.name(0) + ": \"" + kind.substr(0, 32) + "\" is not \"pty\" or \"exec\"");
      each_element(f.at(1), f.name(1), [&](const msgpack::object& e, const std::string& ef) {
        o.argv.push_back(get_str(e, ef));
      });
      if (o.kind == ChannelKind::kExec && o.argv.empty())
        fail("bad_value", f.name(1) + ": an exec channel needs a program to run");
      each_entry(f.at(2), f.name(2), [&](std::string_view k, const msgpack::object& v, const std::string& ef) {
        o.env[std::string(k)] = get_str(v, ef);
      });
      o.cols = get_dimension(f.at(3), f.name(3));
      o.rows = get_dimension(f.at(4), f.name(4));
      o.window = static_cast<uint32_t>(get_uint(f.at(5), f.name(5), kMaxWindow));
      if (o.window < kMinWindow)
        fail("out_of_range", f.name(5) + ": " + std::to_string(o.window) + " is under the minimum " +
                                 std::to_string(kMinWindow));
      // user and account, appended (frame.h): absent from hubs that predate them
      if (a.size > 8) o.user = get_str(a.ptr[8], std::string(name) + ".user");
      if (a.size > 9) o.account = get_str(a.ptr[9], std::string(name) + ".account");
      return o;
    }
    case FrameType::kOpened: {
      Fields f(a, name, {"pid"});
      return Opened{channel, static_cast<uint32_t>(get_uint(f.at(0), f.name(0), UINT32_MAX))};
    }
    case FrameType::kData: {
      Fields f(a, name, {"stream", "offset", "bytes"});
      Data d;
      d.channel = channel;
      d.stream = get_stream(f.at(0), f.name(0));
      d.offset = get_uint(f.at(1), f.name(1), UINT64_MAX);
      // PTY bytes are bin, never str: a str would invite UTF-8 validation and splitting bugs.
      if (f.at(2).type != msgpack::type::BIN) wrong_type(f.name(2), "bin", f.at(2));
      const auto& bin = f.at(2).via.bin;
      if (UINT64_MAX - d.offset < bin.size)
        fail("out_of_range", f.name(1) + ": offset + length overflows 64 bits");
      d.bytes.assign(reinterpret_cast<const uint8_t*>(bin.ptr), reinterpret_cast<const uint8_t*>(bin.ptr) + bin.size);
      return d;
    }
    case FrameType::kAck: {
      Fields f(a, name, {"stream", "offset"});
      return Ack{channel, get_stream(f.at(0), f.name(0)), get_uint(f.at(1), f.name(1), UINT64_MAX)};
    }
    case FrameType::kResize: {
      Fields f(a, name, {"cols", "rows"});
      return Resize{channel, get_dimension(f.at(0), f.name(0)), get_dimension(f.at(1), f.name(1))};
    }
    case FrameType::kSignal: {
      Fields f(a, name, {"signal"});
      return Signal{channel, get_signal_name(f.at(0), f.name(0), false)};
    }
    case FrameType::kExit: {
      Fields f(a, name, {"code", "signal"});
      auto code = static_cast<int32_t>(get_int(f.at(0), f.name(0), INT32_MIN, INT32_MAX));
      return Exit{channel, code, get_signal_name(f.at(1), f.name(1), true)};
    }
    case FrameType::kClose: {
      Fields f(a, name, {"reason"});
      return Close{channel, get_str(f.at(0), f.name(0))};
    }
    case FrameType::kStats: {
      Fields f(a, name, {"stats"});
      Stats s = get_stats(f.at(0), f.name(0));
      s.channel = channel;
      return s;
    }
    case FrameType::kError: {
      Fields f(a, name, {"code", "message"});
      return ErrorFrame{channel, get_str(f.at(0), f.name(0)), get_str(f.at(1), f.name(1))};
    }
  }
  return Unknown{type, channel};
}

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

namespace {
// Reads a msgpack unsigned integer in the smallest encoding msgpack-c's packer would choose
// (so only canonical frames take the fast path).
bool read_uint(std::span<const uint8_t> b, size_t& i, uint64_t& v) {
  if (i >= b.size()) return false;
  uint8_t t = b[i++];
  if (t <= 0x7f) {
    v = t;
    return true;
  }
  size_t n = t == 0xcc ? 1 : t == 0xcd ? 2 : t == 0xce ? 4 : t == 0xcf ? 8 : 0;
  if (n == 0 || i + n > b.size()) return false;
  v = 0;
  for (size_t k = 0; k < n; ++k) v = (v << 8) | b[i++];
  uint64_t min = n == 1 ? 0x80 : n == 2 ? 0x100 : n == 4 ? 0x10000 : 0x100000000ull;
  return v >= min;
}
}  // namespace

std::optional<DataView> peek_data(std::span<const uint8_t> b) {
  if (b.size() < 7 || b.size() > kMaxFrameBytes || b[0] != 0x95 || b[1] != uint8_t(FrameType::kData)) return std::nullopt;
  size_t i = 2;
  uint64_t channel = 0, stream = 0, offset = 0;
  if (!read_uint(b, i, channel) || channel > UINT32_MAX) return std::nullopt;
  if (!read_uint(b, i, stream) || stream > kMaxStream) return std::nullopt;
  if (!read_uint(b, i, offset)) return std::nullopt;
  if (i >= b.size()) return std::nullopt;
  uint8_t t = b[i++];
  size_t n = t == 0xc4 ? 1 : t == 0xc5 ? 2 : t == 0xc6 ? 4 : 0;
  if (n == 0 || i + n > b.size()) return std::nullopt;
  uint64_t len = 0;
  for (size_t k = 0; k < n; ++k) len = (len << 8) | b[i++];
  uint64_t min = n == 1 ? 0 : n == 2 ? 0x100 : 0x10000;
  if (len < min || len > kMaxChunk || len != b.size() - i || UINT64_MAX - offset < len) return std::nullopt;
  return DataView{uint32_t(channel), Stream(stream), offset, b.subspan(i)};
}

Result<Frame> decode(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return make_error("empty_frame", "frame is empty");
  // The cap comes first: msgpack never sees an oversized message.
  if (bytes.size() > kMaxFrameBytes)
    return make_error("frame_too_large", "frame of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
                                             std::to_string(kMaxFrameBytes));
  try {
    msgpack::unpack_limit limit(kMaxElements, kMaxElements, kMaxString, kMaxChunk, 0, kMaxDepth);
    // Reference str/bin in place instead of copying them into msgpack's zone: the fields are
    // copied once, into the Frame, below.
    auto reference_all = [](msgpack::type::object_type, std::size_t, void*) { return true; };
    std::size_t off = 0;
    msgpack::object_handle oh =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), off, reference_all, nullptr, limit);
    if (off != bytes.size())
      return make_error("trailing_bytes", std::to_string(bytes.size() - off) + " bytes follow the frame");
    const msgpack::object& root = oh.get();
    if (root.type != msgpack::type::ARRAY)
      return make_error("not_an_array", "frame must be a msgpack array, got " + std::string(type_name(root)));
    const auto& a = root.via.array;
    if (a.size < 2)
      return make_error("missing_field", "frame must be an array of at least [type, channel], got " +
                                             std::to_string(a.size) + " elements");
    auto type = static_cast<uint32_t>(get_uint(a.ptr[0], "frame.type", UINT32_MAX));
    auto channel = static_cast<uint32_t>(get_uint(a.ptr[1], "frame.channel", UINT32_MAX));
    return decode_fields(type, channel, a);
  } catch (const Failure& f) {
    return f.error;
  } catch (const msgpack::insufficient_bytes&) {
    return make_error("truncated", "frame ends in the middle of a value");
  } catch (const msgpack::depth_size_overflow&) {
    return make_error("too_deep", "arrays and maps nest deeper than " + std::to_string(kMaxDepth));
  } catch (const msgpack::bin_size_overflow&) {
    return make_error("too_large", "a bin value is over the limit of " + std::to_string(kMaxChunk) + " bytes");
  } catch (const msgpack::str_size_overflow&) {
    return make_error("too_large", "a string is over the limit of " + std::to_string(kMaxString) + " bytes");
  } catch (const msgpack::array_size_overflow&) {
    return make_error("too_large", "an array has more than " + std::to_string(kMaxElements) + " elements");
  } catch (const msgpack::map_size_overflow&) {
    return make_error("too_large", "a map has more than " + std::to_string(kMaxElements) + " entries");
  } catch (const msgpack::ext_size_overflow&) {
    return make_error("bad_type", "msgpack ext values are not used by this protocol");
  } catch (const msgpack::unpack_error& e) {
    return make_error("not_msgpack", std::string("not valid msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    return make_error("too_large", "frame needs more memory than allowed to decode");
  } catch (const std::exception& e) {
    return make_error("not_msgpack", std::string("cannot decode frame: ") + e.what());
  }
}

}  // namespace rx::protocol
