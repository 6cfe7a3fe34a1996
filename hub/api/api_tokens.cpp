// API tokens (each user manages their own; an admin sees and revokes all) and users (admin only).
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/store/accounts.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

nlohmann::json token_json(const TokenRecord& t) {
  auto opt = [](const std::optional<int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"id", t.id},
          {"user", t.user_id},
          {"name", t.name},
          {"scopes", scope_list(t.scopes)},
          {"created_at", t.created_at},
          {"expires_at", opt(t.expires_at)},
          {"last_used_at", opt(t.last_used_at)},
          {"revoked", t.revoked}};
}

}  // namespace

Reply Api::create_token(const Principal& p, Request& req) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto name = opt_string(*body, "name", 128);
  if (!name) return name.error();
  if (!*name || (*name)->empty()) return bad_field("name", "is required");
  std::vector<std::string> wanted{"read", "write"};
  if (body->contains("scopes")) {
    const auto& s = (*body)["scopes"];
    if (!s.is_array()) return bad_field("scopes", "must be an array of read, write, admin");
    wanted.clear();
    for (const auto& w : s) {
      if (!w.is_string()) return bad_field("scopes", "every scope must be a string");
      wanted.push_back(w.get<std::string>());
    }
  }
  auto scopes = normalize_scopes(wanted);
  if (!scopes) return scopes.error();
  // A token can hand out only what it holds itself.
  for (const auto& s : scope_list(*scopes))
    if (!p.can(s))
      return make_error("forbidden", "a token cannot grant the " + s + " scope it does not hold");
  auto expires_in = opt_int(*body, "expires_in", 1, 10LL * 366 * 24 * 3600);
  if (!expires_in) return expires_in.error();
  std::optional<int64_t> expires_at;
  if (*expires_in) expires_at = now() + **expires_in;
  auto minted = mint_token(store_, p.user.id, **name, *scopes, expires_at);
  if (!minted) return minted.error();
  audit(p, "token.create", minted->record.id, "name=" + **name + " scopes=" + *scopes);
  auto j = token_json(minted->record);
  j["token"] = minted->secret;
  return json_response(201, j);
}

Reply Api::list_tokens(const Principal& p, Request&) {
  auto tokens = store_.list_tokens(p.is_admin() ? "" : p.user.id);
  if (!tokens) return tokens.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : *tokens) out.push_back(token_json(t));
  return json_response(200, {{"tokens", out}});
}

Reply Api::delete_token(const Principal& p, Request& req) {
  auto t = store_.token_by_id(req.params["id"]);
  if (!t) return t.error();
  if (!*t || !p.sees((*t)->user_id)) return make_error("not_found", "no token \"" + req.params["id"] + "\"");
  if (auto s = store_.revoke_token((*t)->id); !s) return s.error();
  audit(p, "token.revoke", (*t)->id);
  return json_response(200, {{"id", (*t)->id}, {"revoked", true}});
}

Reply Api::create_user(const Principal& p, Request& req) {
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto name = opt_string(*body, "name", 64);
  if (!name) return name.error();
  if (!*name) return bad_field("name", "is required");
  auto admin = opt_bool(*body, "admin");
  if (!admin) return admin.error();
  auto added = add_user(store_, **name, admin->value_or(false));
  if (!added) return added.error();
  audit(p, "user.create", added->user.id, "name=" + added->user.name + (added->user.admin ? " admin" : ""));
  audit(p, "token.create", added->token.record.id, "name=first token user=" + added->user.id);
  return json_response(201, {{"id", added->user.id},
                                {"name", added->user.name},
                                {"admin", added->user.admin},
                                {"token", added->token.secret}});
}

Reply Api::list_users(const Principal&, Request&) {
  auto users = store_.list_users();
  if (!users) return users.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& u : *users) out.push_back({{"id", u.id}, {"name", u.name}, {"admin", u.admin}});
  return json_response(200, {{"users", out}});
}

}  // namespace rx::hub
