// Share links: a terminal's owner hands out a code that lets anyone holding it watch (view) or
// type into (control) that one terminal, until it expires or is deleted. The code is a secret
// (192 bits, stored as its hash); the hub, not the page, enforces view-only.
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/base/tokens.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

nlohmann::json share_json(const ShareRecord& s) {
  return {{"id", s.id}, {"terminal", s.terminal_id}, {"mode", s.mode}, {"created_at", s.created_at},
          {"expires_at", s.expires_at}};
}

}  // namespace

std::string Api::public_base(const Request& req) const {
  if (!config_.public_url.empty()) return config_.public_url;
  return std::string(config_.tls_cert.empty() ? "http://" : "https://") + req.header("host").value_or("localhost");
}

Reply Api::create_share(const Principal& p, Request& req) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  auto body = optional_body(req.body);
  if (!body) return body.error();
  auto mode = opt_string(*body, "mode", 16);
  if (!mode) return mode.error();
  std::string m = mode->value_or("view");
  if (m != "view" && m != "control") return bad_field("mode", "must be \"view\" or \"control\"");
  auto expires_in = opt_int(*body, "expires_in", 60, 30 * 24 * 3600);
  if (!expires_in) return expires_in.error();
  std::string code = new_token(TokenKind::kShare);
  ShareRecord s;
  s.id = new_id("sh_");
  s.terminal_id = t->id;
  s.owner_id = t->owner_id;
  s.mode = m;
  s.created_at = now();
  s.expires_at = s.created_at + expires_in->value_or(3600);
  s.hash = token_hash(code);
  if (auto st = store_.create_share(s); !st) return st.error();
  audit(p, "share.create", t->id, s.id + " mode=" + m);
  auto out = share_json(s);
  out["code"] = code;
  out["url"] = public_base(req) + "/s/" + code;
  return json_response(201, out);
}

Reply Api::list_shares(const Principal& p, Request& req) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  auto shares = store_.list_shares(t->id);
  if (!shares) return shares.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : *shares) out.push_back(share_json(s));
  return json_response(200, {{"shares", out}});
}

Reply Api::delete_share(const Principal& p, Request& req) {
  auto s = store_.share_by_id(req.params["id"]);
  if (!s) return s.error();
  if (!*s || !p.sees((*s)->owner_id)) return make_error("not_found", "no share " + req.params["id"]);
  if (auto st = store_.delete_share((*s)->id); !st) return st.error();
  if (auto* live = relay_.terminal((*s)->terminal_id)) live->drop_share_viewers((*s)->id, "share link deleted");
  audit(p, "share.delete", (*s)->terminal_id, (*s)->id);
  return json_response(200, {{"id", (*s)->id}, {"deleted", true}});
}

Result<ShareRecord> Api::find_share(const std::string& code, const std::string& terminal_id) {
  // One answer for every kind of wrong code, so a guesser learns nothing.
  auto invalid = make_error("unauthorized", "unknown or expired share code");
  if (!looks_like(TokenKind::kShare, code)) return invalid;
  std::string hash = token_hash(code);
  auto s = store_.share_by_hash(hash);
  if (!s) return s.error();
  if (!*s || !hashes_equal((*s)->hash, hash) || (*s)->expires_at <= now()) return invalid;
  if (!terminal_id.empty() && (*s)->terminal_id != terminal_id) return invalid;
  return **s;
}

Reply Api::lookup_share(const Principal& anonymous, Request& req) {
  auto reply = [](Reply answer) {
    Response r = std::move(answer).response();
    // Embeds on other sites look their share up too; the answer holds nothing but what the code grants.
    r.headers.push_back({"Access-Control-Allow-Origin", "*"});
    return r;
  };
  if (auto r = limited(ip_requests_, anonymous.ip, "ip")) return reply(std::move(*r));
  if (auto r = auth_throttled(anonymous.ip)) return reply(std::move(*r));
  auto body = parse_json_object(req.body);
  if (!body) return reply(body.error());
  auto code = opt_string(*body, "code", 128);
  if (!code) return reply(code.error());
  if (!*code) return reply(bad_field("code", "is required (a share code, rxs_...)"));
  auto s = find_share(**code, "");
  if (!s) return reply(auth_failed(req, s.error()));
  auto t = store_.terminal_by_id(s->terminal_id);
  if (!t) return reply(t.error());
  if (!*t) return reply(make_error("not_found", "the shared terminal is gone"));
  return reply(json_response(200, {{"terminal", {{"id", (*t)->id}, {"name", (*t)->name}, {"status", relay_.status_of(**t)}}},
                                   {"mode", s->mode},
                                   {"expires_at", s->expires_at}}));
}

}  // namespace rx::hub
