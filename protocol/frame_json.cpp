#include "protocol/frame_json.h"

#include "protocol/base64.h"

namespace rx::protocol {
namespace {

using nlohmann::json;

json bin_json(std::span<const uint8_t> bytes) { return json{{"base64", base64_encode(bytes)}}; }

json host_json(const HostInfo& h) {
  json gpus = json::array();
  for (const auto& g : h.gpus) gpus.push_back({{"index", g.index}, {"uuid", g.uuid}, {"model", g.model}, {"mem", g.memory_total}});
  json j{{"hostname", h.hostname}, {"os", h.os}, {"kernel", h.kernel}, {"arch", h.arch},
         {"cpus", h.cpus}, {"mem", h.memory_total}, {"gpus", gpus}};
  if (h.gpu_policy != "open") j["gpu_policy"] = h.gpu_policy;  // as on the wire: absent = "open"
  return j;
}

struct ToJson {
  json operator()(const Hello& f) {
    json chans = json::array();
    for (const auto& c : f.channels) chans.push_back({{"channel", c.channel}, {"input_received", c.input_received}});
    json j{{"proto_min", f.proto_min}, {"proto_max", f.proto_max}, {"agent_version", f.agent_version},
           {"capabilities", f.capabilities}, {"host", host_json(f.host)}, {"channels", chans}};
    if (!f.labels.empty()) j["labels"] = f.labels;  // as on the wire: absent when there are none
    return j;
  }
  json operator()(const Welcome& f) {
    json res = json::array();
    for (const auto& r : f.resume)
      res.push_back({{"channel", r.channel}, {"stream", static_cast<int>(r.stream)}, {"received", r.received}});
    return {{"proto", f.proto}, {"hub_version", f.hub_version}, {"agent_id", f.agent_id},
            {"credential", f.credential ? json(*f.credential) : json(nullptr)}, {"resume", res}};
  }
  json operator()(const Open& f) {
    json j{{"kind", std::string(channel_kind_name(f.kind))}, {"argv", f.argv}, {"env", f.env},
           {"cols", f.cols}, {"rows", f.rows}, {"window", f.window}};
    if (!f.user.empty() || !f.account.empty()) {  // as on the wire: both or neither
      j["user"] = f.user;
      j["account"] = f.account;
    }
    return j;
  }
  json operator()(const Opened& f) { return {{"pid", f.pid}}; }
  json operator()(const Data& f) {
    return {{"stream", static_cast<int>(f.stream)}, {"offset", f.offset}, {"bytes", bin_json(f.bytes)}};
  }
  json operator()(const Ack& f) { return {{"stream", static_cast<int>(f.stream)}, {"offset", f.offset}}; }
  json operator()(const Resize& f) { return {{"cols", f.cols}, {"rows", f.rows}}; }
  json operator()(const Signal& f) { return {{"signal", f.name}}; }
  json operator()(const Exit& f) { return {{"code", f.code}, {"signal", f.signal}}; }
  json operator()(const Close& f) { return {{"reason", f.reason}}; }
  json operator()(const Stats& f) {
    json gpus = json::array();
    for (const auto& g : f.gpus) {
      json gj{{"index", g.index}, {"util", g.utilization}, {"mem_used", g.memory_used}, {"mem_total", g.memory_total}};
      if (!g.processes.empty()) {  // as on the wire: absent when there are none
        json procs = json::array();
        for (const auto& p : g.processes)
          procs.push_back({{"pid", p.pid}, {"name", p.name}, {"mem", p.memory_used}, {"account", p.account},
                           {"user", p.user}, {"channel", p.channel}});
        gj["procs"] = procs;
      }
      gpus.push_back(gj);
    }
    return {{"stats", {{"cpu", f.cpu_permille}, {"mem_used", f.memory_used}, {"mem_total", f.memory_total}, {"gpus", gpus}}}};
  }
  json operator()(const ErrorFrame& f) { return {{"code", f.code}, {"message", f.message}}; }
  json operator()(const FileOpen& f) {
    return {{"op", f.op},       {"path", f.path}, {"window", f.window}, {"mode", f.mode},
            {"flags", f.flags}, {"user", f.user}, {"account", f.account}};
  }
  json operator()(const Unknown&) { return json::object(); }
};

struct BadJson {
  std::string why;
};

std::vector<uint8_t> bin_from(const json& j) {
  auto decoded = base64_decode(j.at("base64").get<std::string>());
  if (!decoded) throw BadJson{decoded.error().message};
  return std::move(decoded).value();
}

Stream stream_from(const json& j) {
  auto v = j.get<uint32_t>();
  if (v > kMaxStream) throw BadJson{"stream " + std::to_string(v) + " is not 0, 1 or 2"};
  return static_cast<Stream>(v);
}

HostInfo host_from(const json& j) {
  HostInfo h;
  h.hostname = j.at("hostname").get<std::string>();
  h.os = j.at("os").get<std::string>();
  h.kernel = j.at("kernel").get<std::string>();
  h.arch = j.at("arch").get<std::string>();
  h.cpus = j.at("cpus").get<uint32_t>();
  h.memory_total = j.at("mem").get<uint64_t>();
  for (const auto& g : j.at("gpus"))
    h.gpus.push_back({g.at("index").get<uint32_t>(), g.at("uuid").get<std::string>(), g.at("model").get<std::string>(),
                      g.at("mem").get<uint64_t>()});
  if (j.contains("gpu_policy")) h.gpu_policy = j.at("gpu_policy").get<std::string>();
  return h;
}

Frame from_json(const json& j) {
  const json& t = j.at("type");
  auto channel = j.at("channel").get<uint32_t>();
  if (t.is_number()) return Unknown{t.get<uint32_t>(), channel};
  std::string type = t.get<std::string>();
  if (type == "HELLO") {
    Hello h;
    h.channel = channel;
    h.proto_min = j.at("proto_min").get<uint32_t>();
    h.proto_max = j.at("proto_max").get<uint32_t>();
    h.agent_version = j.at("agent_version").get<std::string>();
    h.capabilities = j.at("capabilities").get<std::vector<std::string>>();
    h.host = host_from(j.at("host"));
    for (const auto& c : j.at("channels"))
      h.channels.push_back({c.at("channel").get<uint32_t>(), c.at("input_received").get<uint64_t>()});
    if (j.contains("labels")) h.labels = j.at("labels").get<std::map<std::string, std::string>>();
    return h;
  }
  if (type == "WELCOME") {
    Welcome w;
    w.channel = channel;
    w.proto = j.at("proto").get<uint32_t>();
    w.hub_version = j.at("hub_version").get<std::string>();
    w.agent_id = j.at("agent_id").get<std::string>();
    if (!j.at("credential").is_null()) w.credential = j.at("credential").get<std::string>();
    for (const auto& r : j.at("resume"))
      w.resume.push_back({r.at("channel").get<uint32_t>(), stream_from(r.at("stream")), r.at("received").get<uint64_t>()});
    return w;
  }
  if (type == "OPEN") {
    Open o;
    o.channel = channel;
    auto kind = j.at("kind").get<std::string>();
    if (kind != "pty" && kind != "exec") throw BadJson{"kind \"" + kind + "\" is not pty or exec"};
    o.kind = kind == "exec" ? ChannelKind::kExec : ChannelKind::kPty;
    o.argv = j.at("argv").get<std::vector<std::string>>();
    o.env = j.at("env").get<std::map<std::string, std::string>>();
    o.cols = j.at("cols").get<uint16_t>();
    o.rows = j.at("rows").get<uint16_t>();
    o.window = j.at("window").get<uint32_t>();
    if (j.contains("user")) o.user = j.at("user").get<std::string>();
    if (j.contains("account")) o.account = j.at("account").get<std::string>();
    return o;
  }
  if (type == "OPENED") return Opened{channel, j.at("pid").get<uint32_t>()};
  if (type == "DATA") return Data{channel, stream_from(j.at("stream")), j.at("offset").get<uint64_t>(), bin_from(j.at("bytes"))};
  if (type == "ACK") return Ack{channel, stream_from(j.at("stream")), j.at("offset").get<uint64_t>()};
  if (type == "RESIZE") return Resize{channel, j.at("cols").get<uint16_t>(), j.at("rows").get<uint16_t>()};
  if (type == "SIGNAL") return Signal{channel, j.at("signal").get<std::string>()};
  if (type == "EXIT") return Exit{channel, j.at("code").get<int32_t>(), j.at("signal").get<std::string>()};
  if (type == "CLOSE") return Close{channel, j.at("reason").get<std::string>()};
  if (type == "STATS") {
    const json& s = j.at("stats");
    Stats st;
    st.channel = channel;
    st.cpu_permille = s.at("cpu").get<uint32_t>();
    st.memory_used = s.at("mem_used").get<uint64_t>();
    st.memory_total = s.at("mem_total").get<uint64_t>();
    for (const auto& g : s.at("gpus")) {
      GpuStats gs{g.at("index").get<uint32_t>(), g.at("util").get<uint32_t>(), g.at("mem_used").get<uint64_t>(),
                  g.at("mem_total").get<uint64_t>()};
      if (g.contains("procs"))
        for (const auto& p : g.at("procs"))
          gs.processes.push_back({p.at("pid").get<uint32_t>(), p.at("name").get<std::string>(),
                                  p.at("mem").get<uint64_t>(), p.at("account").get<std::string>(),
                                  p.at("user").get<std::string>(), p.at("channel").get<uint32_t>()});
      st.gpus.push_back(std::move(gs));
    }
    return st;
  }
  if (type == "ERROR") return ErrorFrame{channel, j.at("code").get<std::string>(), j.at("message").get<std::string>()};
  if (type == "FILE")
    return FileOpen{channel,
                    j.at("op").get<std::string>(),
                    j.at("path").get<std::string>(),
                    j.at("window").get<uint32_t>(),
                    j.at("mode").get<uint32_t>(),
                    j.at("flags").get<uint32_t>(),
                    j.at("user").get<std::string>(),
                    j.at("account").get<std::string>()};
  throw BadJson{"unknown frame type \"" + type + "\""};
}

}  // namespace

json frame_to_json(const Frame& frame) {
  json body = std::visit(ToJson{}, frame);
  json out = {{"channel", frame_channel(frame)}};
  if (std::holds_alternative<Unknown>(frame)) out["type"] = frame_type(frame);
  else out["type"] = std::string(frame_type_name(frame_type(frame)));
  out.update(body);
  return out;
}

Result<Frame> frame_from_json(const json& j) {
  try {
    return from_json(j);
  } catch (const BadJson& e) {
    return make_error("bad_json", e.why);
  } catch (const json::exception& e) {
    return make_error("bad_json", e.what());
  }
}

}  // namespace rx::protocol
