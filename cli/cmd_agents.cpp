// agents, enroll: the machines (docs/api.md, "Agents") and the one line that adds another.
#include "cli/commands.h"
#include "cli/failure.h"
#include "cli/output.h"
#include "cli/parse.h"

namespace rx::cli {

namespace {

std::string labels_cell(const nlohmann::json& a) {
  std::string s;
  nlohmann::json labels = a.value("labels", nlohmann::json::object());
  for (const auto& [k, v] : labels.items())
    s += (s.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s.empty() ? "-" : s;
}

// "0:bob 1:free": who holds each GPU.
std::string gpus_cell(const nlohmann::json& a) {
  std::string s;
  for (const auto& g : a.value("gpus", nlohmann::json::array())) {
    std::string holder = "free";
    if (auto h = g.find("holder"); h != g.end() && h->is_object()) holder = field(*h, "user");
    s += (s.empty() ? "" : " ") + cell(g.value("index", nlohmann::json())) + ":" + holder;
  }
  return s.empty() ? "-" : s;
}

}  // namespace

void add_agent_commands(CLI::App& app, Context& ctx) {
  {
    auto* agents = app.add_subcommand("agents", "List the machines you can reach: labels, GPUs and who holds them");
    auto json = std::make_shared<bool>(false);
    agents->add_flag("--json", *json, "The API's answer (GET /api/v1/agents) as JSON");
    agents->callback([&ctx, json] {
      auto list = ctx.hub().get("/api/v1/agents");
      if (*json) return print_json(list);
      std::vector<std::vector<std::string>> rows{{"NAME", "ID", "STATUS", "OS", "LABELS", "GPUS"}};
      for (const auto& a : list.value("agents", nlohmann::json::array())) {
        bool online = a.value("online", false);
        std::string host = a.contains("host") ? field(a["host"], "os") : "";
        rows.push_back({field(a, "name"), field(a, "id"), online ? "online" : "offline", host.empty() ? "-" : host,
                        labels_cell(a), gpus_cell(a)});
      }
      print_table(rows);
    });
  }
  {
    auto* enroll = app.add_subcommand("enroll", "Print the one-line command that installs an agent on a machine");
    struct Opts {
      int uses = 1;
      std::string expires = "15m";
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    enroll->add_option("--uses", o->uses, "How many machines may enroll with it (default 1)");
    enroll->add_option("--expires", o->expires, "How long it works: 15m (default), 1h; at most 7d");
    enroll->add_flag("--json", o->json, "The hub's answer as JSON");
    enroll->callback([&ctx, o] {
      int64_t seconds = parse_duration(o->expires);
      auto r = ctx.hub().post("/api/v1/agent-enrollments", {{"uses", o->uses}, {"expires_in", seconds}});
      if (o->json) return print_json(r);
      std::printf("%s\n", field(r, "install_command").c_str());
    });
  }
}

}  // namespace rx::cli
