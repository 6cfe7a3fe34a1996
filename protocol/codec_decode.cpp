// Decoding half of codec.h: msgpack -> Frame (decode), every field type- and range-checked. Apart
// from encoding because the two share no code; the DATA fast path peek_data is codec_peek.cpp.
#include "protocol/codec.h"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <limits>
#include <new>
#include <string>

#include "protocol/limits.h"

namespace rx::protocol {
namespace {

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
  std::array<const char*, 8> names_{};  // the longest frame (FILE) has 7 fields
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
    case FrameType::kFile: {
      Fields f(a, name, {"op", "path", "window", "mode", "flags", "user", "account"});
      FileOpen o;
      o.channel = channel;
      o.op = get_str(f.at(0), f.name(0));
      if (o.op != "get" && o.op != "put" && o.op != "list" && o.op != "delete")
        fail("bad_value", f.name(0) + ": \"" + o.op.substr(0, 32) + "\" is not \"get\", \"put\", \"list\" or \"delete\"");
      o.path = get_str(f.at(1), f.name(1));
      if (o.path.empty()) fail("bad_value", f.name(1) + ": empty");
      if (o.path.find('\0') != std::string::npos) fail("bad_value", f.name(1) + ": holds a NUL byte");
      if (o.path.size() > kMaxFilePath)
        fail("bad_value", f.name(1) + ": " + std::to_string(o.path.size()) + " bytes, over the limit of " +
                              std::to_string(kMaxFilePath));
      o.window = static_cast<uint32_t>(get_uint(f.at(2), f.name(2), kMaxWindow));
      if (o.window < kMinWindow)
        fail("out_of_range", f.name(2) + ": " + std::to_string(o.window) + " is under the minimum " +
                                 std::to_string(kMinWindow));
      o.mode = static_cast<uint32_t>(get_uint(f.at(3), f.name(3), 07777));
      o.flags = static_cast<uint32_t>(get_uint(f.at(4), f.name(4), UINT32_MAX));
      o.user = get_str(f.at(5), f.name(5));
      o.account = get_str(f.at(6), f.name(6));
      return o;
    }
  }
  return Unknown{type, channel};
}

}  // namespace

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
