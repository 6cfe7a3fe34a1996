// Container terminals: POST /api/v1/terminals {"kind":"container", ...} and their DELETE. The
// hub makes a container agent (its own credential, in a 0600 file mounted read-only), records
// the terminal as starting, and starts the container; the terminal runs when that agent says
// HELLO over the hub's unix socket.

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/docker/agent_binary.h"
#include "hub/docker/container_agent.h"
#include "hub/docker/image_ref.h"
#include "hub/docker/warm_pool.h"
#include "protocol/log_line.h"

namespace rx::hub {

Reply Api::create_container_terminal(const Principal& p, const nlohmann::json& body, const Exchange& ex) {
  auto image = opt_string(body, "image");
  if (!image) return image.error();
  if (!*image || (*image)->empty()) return bad_field("image", "is required for kind container");
  auto name = opt_string(body, "name", 128);
  auto network = opt_string(body, "network");
  auto memory = opt_int(body, "memory_mb", 32, 65536);
  auto cols = opt_int(body, "cols", 1, 1000);
  auto rows = opt_int(body, "rows", 1, 1000);
  auto env = opt_env(body);
  auto parsed_labels = opt_labels(body);  // checked by create_terminal already
  std::string labels = parsed_labels ? *parsed_labels : std::string("{}");
  auto record = record_choice(body);  // checked by create_terminal already
  if (!record) return record.error();
  for (const Error* e : {name ? nullptr : &name.error(), network ? nullptr : &network.error(), memory ? nullptr : &memory.error(),
                         cols ? nullptr : &cols.error(), rows ? nullptr : &rows.error(), env ? nullptr : &env.error()})
    if (e) return *e;
  if (auto s = check_image_ref(**image); !s) return s.error();
  // Before anything is made: a container without a runnable agent would die at once (code 126).
  if (auto s = check_agent_binary(containers_.agent_binary()); !s) return s.error();
  if (auto s = Relay::pty_open_ok(*env); !s) return s.error();
  ContainerSpec spec;
  spec.image = **image;
  spec.network = network->value_or("none");
  if (spec.network != "none" && spec.network != "isolated")
    return bad_field("network", "must be \"none\" or \"isolated\"");
  bool has_cpus = body.contains("cpus") && !body["cpus"].is_null();
  if (has_cpus) {
    if (!body["cpus"].is_number() || body["cpus"].get<double>() < 0.05 || body["cpus"].get<double>() > 256)
      return bad_field("cpus", "must be a number between 0.05 and 256");
    spec.cpus = body["cpus"].get<double>();
  }
  spec.memory_mb = int(memory->value_or(512));
  // Quota: the user's container terminals that still hold a container.
  auto held = store_.list_terminals(TerminalFilter{"container", p.user.id});
  if (!held) return held.error();
  int mine = int(held->size());
  if (mine >= config_.container_quota)
    return make_error("quota_exceeded", "you have " + std::to_string(mine) +
                                                                     " container terminals, the most allowed; delete one first");
  if (auto r = limited(terminal_creates_, p.token_id, "terminal_create")) return std::move(*r);

  // A warm container fits a request with the default limits: its agent is online already.
  bool defaults = spec.network == "none" && !memory->has_value() && !has_cpus;
  if (pool_ && defaults) {
    if (auto w = pool_->take(spec.image)) {
      (void)store_.update_agent_owner(w->agent_id, p.user.id);
      auto agent = store_.agent_by_id(w->agent_id);
      if (agent && *agent) {
        auto t = relay_.create_container_terminal(p.user, **agent, spec.image, name->value_or(""),
                                                  uint16_t(cols->value_or(80)), uint16_t(rows->value_or(24)), *env,
                                                  w->terminal_id, *record);
        if (!t) return t.error();
        apply_labels(*t, labels);
        return created_container_terminal(p, *t, w->container_id, " warm");
      }
    }
  }

  containers_.check_image(spec.image, replying(ex, [this, p, spec, name = name->value_or(""), cols = uint16_t(cols->value_or(80)),
                                       rows = uint16_t(rows->value_or(24)), env = *env, labels, record = *record, ex](Status s) mutable -> Reply {
    if (!s) return s.error();
    // The container's own agent, with a credential only it can read.
    auto made = create_container_agent(store_, config_.data_dir, p.user.id, "container-");
    if (!made) return made.error();
    auto t = relay_.create_container_terminal(p.user, made->agent, spec.image, name, cols, rows, env, "", record);
    if (!t) return t.error();
    apply_labels(*t, labels);
    spec.terminal_id = t->id;
    containers_.launch(spec, made->credential_file, replying(ex, [this, p, t = *t](Result<std::string> id) -> Reply {
      if (!id) {
        (void)relay_.delete_terminal(t.id);
        discard_container_agent(store_, config_.data_dir, t.agent_id);
        log("warn", "container.launch_failed", {{"terminal", t.id}, {"reason", id.error().message}});
        return id.error();
      }
      return created_container_terminal(p, t, *id, "");
    }));
    return Later{};
  }));
  return Later{};
}

Response Api::created_container_terminal(const Principal& p, TerminalRecord t, const std::string& container_id,
                                        const std::string& note) {
  (void)store_.update_terminal_container(t.id, container_id);
  t.container_id = container_id;
  audit(p, "terminal.create", t.id, "image=" + t.image + " container=" + container_id.substr(0, 12) + note);
  log("info", "terminal.create", {{"terminal", t.id}, {"image", t.image}, {"container", container_id.substr(0, 12)}, {"user", p.user.id}});
  return json_response(201, terminal_json(t));
}

Reply Api::delete_container_terminal(const Principal& p, const TerminalRecord& t, const Exchange& ex) {
  auto finish = [this, p, t](Status s) -> Reply {
    if (!s) {
      relay_.set_deleting(t.id, false);
      return s.error();
    }
    if (auto d = relay_.delete_terminal(t.id); !d) return d.error();
    discard_container_agent(store_, config_.data_dir, t.agent_id);
    relay_.revoke_agent(t.agent_id);
    audit(p, "terminal.delete", t.id, "container");
    return json_response(200, {{"id", t.id}, {"deleted", true}});
  };
  if (t.container_id.empty()) return finish(Ok{});
  relay_.set_deleting(t.id, true);
  containers_.remove(t.container_id, replying(ex, finish));
  return Later{};
}

Reply Api::stop_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  if (t->kind != "container" || t->container_id.empty())
    return make_error("conflict", "only a container terminal can be stopped");
  std::string status = relay_.status_of(*t);
  if (status == "stopped" || status == "lost")
    return make_error("conflict", "the terminal is " + status);
  relay_.mark_stopped(t->id);  // first: the agent's link going down is then no surprise
  containers_.stop(t->container_id, replying(ex, [this, p, id = t->id](Status s) -> Reply {
    if (!s) return s.error();
    audit(p, "terminal.stop", id);
    return json_response(200, {{"id", id}, {"status", "stopped"}});
  }));
  return Later{};
}

Reply Api::start_terminal(const Principal& p, Request& req, const Exchange& ex) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  if (t->kind != "container" || t->container_id.empty())
    return make_error("conflict", "only a container terminal can be started");
  if (relay_.status_of(*t) != "stopped")
    return make_error("conflict", "the terminal is " + relay_.status_of(*t) + ", not stopped");
  if (auto s = relay_.restart_container_terminal(t->id); !s) return s.error();
  relay_.container_starting(t->id);
  containers_.start(t->container_id, replying(ex, [this, p, id = t->id](Status s) -> Reply {
    relay_.container_started(id);
    if (!s) {
      relay_.mark_stopped(id);
      return s.error();
    }
    audit(p, "terminal.start", id);
    return json_response(200, {{"id", id}, {"status", "starting"}});
  }));
  return Later{};
}

}  // namespace rx::hub
