// Browser sign-in: an API token, typed once into the sign-in page, becomes a hub-side session
// whose secret lives only in an HttpOnly, SameSite=Strict cookie. The page never keeps the
// token; scripts never see the cookie; signing out revokes the session on the hub.
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/base/tokens.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

nlohmann::json session_json(const Principal& p, int64_t expires_at) {
  return {{"user", {{"id", p.user.id}, {"name", p.user.name}, {"admin", p.user.admin}}},
          {"scopes", p.scopes},
          {"expires_at", expires_at}};
}

}  // namespace

Reply Api::create_session(const Principal& anonymous, Request& req) {
  // A public route (there is no session yet), so the per-IP limit is applied here: it is what
  // slows down token guessing.
  if (auto r = limited(ip_requests_, anonymous.ip, "ip")) return std::move(*r);
  if (auto r = auth_throttled(anonymous.ip)) return std::move(*r);
  auto body = parse_json_object(req.body);
  if (!body) return body.error();
  auto token = opt_string(*body, "token", 256);
  if (!token) return token.error();
  if (!*token) return bad_field("token", "is required (an API token, rxk_...)");
  auto p = authenticate_token(**token, req);
  if (!p) return auth_failed(req, p.error());
  std::string secret = new_token(TokenKind::kSession);
  SessionRecord s;
  s.id = new_id("se_");
  s.token_id = p->token_id;
  s.user_id = p->user.id;
  s.created_at = now();
  s.expires_at = s.created_at + config_.session_ttl_s;
  // The session never outlives its token.
  if (p->token_expires_at) s.expires_at = std::min(s.expires_at, *p->token_expires_at);
  s.hash = token_hash(secret);
  if (auto st = store_.create_session(s); !st) return st.error();
  audit(*p, "session.create", s.id);
  auto r = json_response(201, session_json(*p, s.expires_at));
  std::string cookie = std::string(kSessionCookie) + "=" + secret + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string(s.expires_at - s.created_at);
  if (!config_.tls_cert.empty()) cookie += "; Secure";
  r.headers.push_back({"Set-Cookie", cookie});
  return r;
}

Reply Api::current_session(const Principal&, Request& req) {
  // "Am I signed in?" is the page's first question, and "no" is a normal answer, not an error
  // (a 401 here would be an error in every signed-out browser's console). Credentials that are
  // there but wrong are still a 401.
  if (!req.bearer() && !req.cookie(kSessionCookie))
    return json_response(200, {{"user", nullptr}, {"scopes", ""}, {"expires_at", nullptr}});
  auto admitted = admit(req);
  if (auto* refusal = std::get_if<Response>(&admitted)) return std::move(*refusal);
  const auto& p = std::get<Principal>(admitted);
  return json_response(200, session_json(p, p.session_expires_at));
}

Reply Api::delete_session(const Principal& p, Request&) {
  if (!p.session_id.empty()) {
    if (auto st = store_.revoke_session(p.session_id); !st) return st.error();
    audit(p, "session.delete", p.session_id);
  }
  Response r;
  r.status = 204;
  r.content_type = "application/json";
  r.headers.push_back({"Set-Cookie", std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"});
  return r;
}

}  // namespace rx::hub
