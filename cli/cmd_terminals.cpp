// ls, create, rm, stop, start, share: the caller's terminals (docs/api.md, "Terminals", "Shares").
#include "cli/commands.h"
#include "cli/failure.h"
#include "cli/output.h"
#include "cli/parse.h"
#include "cli/targets.h"

namespace rx::cli {

namespace {

std::string gpus_cell(const nlohmann::json& t) {
  auto g = t.find("gpus");
  if (g == t.end() || !g->is_array() || g->empty()) return "-";
  std::string s;
  for (const auto& i : *g) s += (s.empty() ? "" : ",") + i.dump();
  return s;
}

}  // namespace

void add_terminal_commands(CLI::App& app, Context& ctx) {
  {
    auto* ls = app.add_subcommand("ls", "List your terminals");
    auto json = std::make_shared<bool>(false);
    ls->add_flag("--json", *json, "The API's answer (GET /api/v1/terminals) as JSON");
    ls->callback([&ctx, json] {
      auto list = ctx.hub().get("/api/v1/terminals");
      if (*json) return print_json(list);
      std::vector<std::vector<std::string>> rows{{"ID", "NAME", "KIND", "ON", "STATUS", "VIEWERS", "GPUS", "AGE"}};
      for (const auto& t : list.value("terminals", nlohmann::json::array())) {
        std::string where = field(t, "kind") == "container" ? field(t, "image") : field(t, "agent_name");
        std::string status = field(t, "status");
        rows.push_back({field(t, "id"), field(t, "name").empty() ? "-" : field(t, "name"), field(t, "kind"),
                        where.empty() ? "-" : where, status, cell(t.value("viewers", nlohmann::json(0))), gpus_cell(t),
                        age(t.value("created_at", int64_t(0)))});
      }
      print_table(rows);
    });
  }
  {
    auto* create = app.add_subcommand("create", "Create a terminal: a container (--image) or a shell on a machine (--agent)");
    struct Opts {
      std::string image, agent, name, gpus;
      std::vector<std::string> labels;
      bool connect = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* image = create->add_option("--image", o->image, "Container image, e.g. rexec/debian:12");
    auto* agent = create->add_option("--agent", o->agent, "Machine (agent) id or name");
    image->excludes(agent);
    create->add_option("--name", o->name, "A name to find it by");
    create->add_option("--gpus", o->gpus, "GPU indexes to lease for it, e.g. 0,1");
    create->add_option("--label", o->labels, "KEY=VALUE label (repeatable), for exec --label");
    create->add_flag("--connect", o->connect, "Attach to it at once");
    create->add_flag("--json", o->json, "The created terminal as JSON");
    create->callback([&ctx, o] {
      if (o->image.empty() && o->agent.empty()) throw Failure("create needs --image IMAGE or --agent NAME");
      nlohmann::json body = o->image.empty() ? nlohmann::json{{"kind", "agent"}, {"agent", o->agent}}
                                             : nlohmann::json{{"kind", "container"}, {"image", o->image}};
      if (!o->name.empty()) body["name"] = o->name;
      if (!o->gpus.empty()) body["gpus"] = parse_gpus(o->gpus);
      if (!o->labels.empty()) {
        body["labels"] = nlohmann::json::object();
        for (const auto& l : o->labels) {
          auto [k, v] = parse_label(l);
          body["labels"][k] = v;
        }
      }
      auto t = ctx.hub().post("/api/v1/terminals", body);
      if (o->json) print_json(t);
      else std::printf("%s\n", field(t, "id").c_str());
      std::fflush(stdout);
      if (o->connect) {
        ctx.status = connect_terminal(ctx, t);
      }
    });
  }
  {
    auto* rm = app.add_subcommand("rm", "Delete terminals (ends their shells)");
    auto names = std::make_shared<std::vector<std::string>>();
    rm->add_option("terminals", *names, "Terminal ids or names")->required();
    rm->callback([&ctx, names] {
      for (const auto& n : *names) {
        auto t = find_terminal(ctx.hub(), n);
        ctx.hub().del("/api/v1/terminals/" + field(t, "id"));
        std::printf("deleted %s\n", field(t, "id").c_str());
      }
    });
  }
  for (const char* verb : {"stop", "start"}) {
    auto* sub = app.add_subcommand(verb, std::string(verb == std::string("stop") ? "Stop" : "Start") +
                                             " a container terminal (its container; agent terminals cannot)");
    auto name = std::make_shared<std::string>();
    sub->add_option("terminal", *name, "Terminal id or name")->required();
    std::string v = verb;
    sub->callback([&ctx, name, v] {
      auto t = find_terminal(ctx.hub(), *name);
      auto r = ctx.hub().post("/api/v1/terminals/" + field(t, "id") + "/" + v, nlohmann::json::object());
      std::printf("%s %s\n", field(t, "id").c_str(), field(r, "status").c_str());
    });
  }
  {
    auto* share = app.add_subcommand("share", "Make a share link: someone without an account watches (--view) or types (--control)");
    struct Opts {
      std::string terminal, expires = "1h";
      bool view = false, control = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    share->add_option("terminal", o->terminal, "Terminal id or name")->required();
    auto* view = share->add_flag("--view", o->view, "Watch only (the default)");
    auto* control = share->add_flag("--control", o->control, "Watch and type");
    view->excludes(control);
    share->add_option("--expires", o->expires, "How long the link works: 30m, 1h (default), 7d; 60 s to 30 days");
    share->add_flag("--json", o->json, "The hub's answer as JSON (includes the code)");
    share->callback([&ctx, o] {
      auto t = find_terminal(ctx.hub(), o->terminal);
      nlohmann::json body{{"mode", o->control ? "control" : "view"}, {"expires_in", parse_duration(o->expires)}};
      auto r = ctx.hub().post("/api/v1/terminals/" + field(t, "id") + "/shares", body);
      if (o->json) return print_json(r);
      std::printf("%s\n", field(r, "url").c_str());
    });
  }
}

}  // namespace rx::cli
