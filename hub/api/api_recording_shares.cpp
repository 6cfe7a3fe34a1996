// Recording share links: a recording's owner hands out a code that lets anyone holding it play
// that one recording in the player page /p/CODE, without an account, until the link expires or
// is deleted. As for terminal shares, the code is a 192-bit secret stored as its hash, and every
// wrong, expired or deleted code gets one plain 401 (counted against the address's failures).
#include <ctime>

#include "hub/api/api.h"
#include "hub/api/json_fields.h"
#include "hub/base/tokens.h"

namespace rx::hub {
namespace {

int64_t now() { return int64_t(std::time(nullptr)); }

nlohmann::json recording_share_json(const RecordingShareRecord& s) {
  return {{"id", s.id}, {"recording", s.recording_id}, {"created_at", s.created_at}, {"expires_at", s.expires_at}};
}

// Read by a browser from any page that embeds the player: the answer holds nothing but what the code grants.
Response cross_origin(Reply answer) {
  Response r = std::move(answer).response();
  r.headers.push_back({"Access-Control-Allow-Origin", "*"});
  return r;
}

}  // namespace

Reply Api::create_recording_share(const Principal& p, Request& req) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  auto body = optional_body(req.body);
  if (!body) return body.error();
  auto expires_in = opt_int(*body, "expires_in", 60, 30 * 24 * 3600);
  if (!expires_in) return expires_in.error();
  std::string code = new_token(TokenKind::kRecordingShare);
  RecordingShareRecord s;
  s.id = new_id("rsh_");
  s.recording_id = r->id;
  s.owner_id = r->owner_id;
  s.created_at = now();
  s.expires_at = s.created_at + expires_in->value_or(24 * 3600);
  s.hash = token_hash(code);
  if (auto st = store_.create_recording_share(s); !st) return st.error();
  audit(p, "recording_share.create", r->id, s.id);
  auto out = recording_share_json(s);
  out["code"] = code;
  out["url"] = public_base(req) + "/p/" + code;
  return json_response(201, out);
}

Reply Api::list_recording_shares(const Principal& p, Request& req) {
  auto r = find_recording(p, req.params["id"]);
  if (!r) return r.error();
  auto shares = store_.list_recording_shares(r->id);
  if (!shares) return shares.error();
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : *shares) out.push_back(recording_share_json(s));
  return json_response(200, {{"shares", out}});
}

Reply Api::delete_recording_share(const Principal& p, Request& req) {
  auto s = store_.recording_share_by_id(req.params["id"]);
  if (!s) return s.error();
  if (!*s || !p.sees((*s)->owner_id)) return make_error("not_found", "no recording share " + req.params["id"]);
  if (auto st = store_.delete_recording_share((*s)->id); !st) return st.error();
  audit(p, "recording_share.delete", (*s)->recording_id, (*s)->id);
  return json_response(200, {{"id", (*s)->id}, {"deleted", true}});
}

Result<RecordingRecord> Api::find_recording_share(const std::string& code) {
  auto invalid = make_error("unauthorized", "unknown, expired or deleted recording share code");
  if (!looks_like(TokenKind::kRecordingShare, code)) return invalid;
  std::string hash = token_hash(code);
  auto s = store_.recording_share_by_hash(hash);
  if (!s) return s.error();
  if (!*s || !hashes_equal((*s)->hash, hash) || (*s)->expires_at <= now()) return invalid;
  auto r = store_.recording_by_id((*s)->recording_id);
  if (!r) return r.error();
  if (!*r) return invalid;
  return **r;
}

Reply Api::lookup_recording_share(const Principal& anonymous, Request& req) {
  if (auto r = limited(ip_requests_, anonymous.ip, "ip")) return cross_origin(std::move(*r));
  if (auto r = auth_throttled(anonymous.ip)) return cross_origin(std::move(*r));
  auto body = parse_json_object(req.body);
  if (!body) return cross_origin(body.error());
  auto code = opt_string(*body, "code", 128);
  if (!code) return cross_origin(code.error());
  if (!*code) return cross_origin(bad_field("code", "is required (a recording share code, rxr_...)"));
  auto r = find_recording_share(**code);
  if (!r) return cross_origin(r.error().code == "unauthorized" ? auth_failed(req, r.error()) : error_response(r.error()));
  auto j = recording_json(*r);
  j.erase("owner");  // what the code grants: the recording, not who made it
  j.erase("agent");
  return cross_origin(json_response(200, {{"recording", j}}));
}

// Same-origin only (the player page /p/CODE is the hub's own): a custom header from another site
// would need a preflight, which the hub does not answer.
std::variant<RecordingRecord, Response> Api::shared_recording(const Principal& anonymous, Request& req) {
  if (auto r = limited(ip_requests_, anonymous.ip, "ip")) return std::move(*r);
  if (auto r = auth_throttled(anonymous.ip)) return std::move(*r);
  // A header, not the URL: a code in a path or query would end up in access logs and history.
  auto code = req.header("x-rexec-share");
  if (!code) return auth_failed(req, make_error("unauthorized", "the X-Rexec-Share header must hold a recording share code"));
  auto r = find_recording_share(*code);
  if (!r) return r.error().code == "unauthorized" ? auth_failed(req, r.error()) : error_response(r.error());
  return *r;
}

Reply Api::shared_recording_cast(const Principal& anonymous, Request& req, const Exchange& ex) {
  auto r = shared_recording(anonymous, req);
  if (auto* refused = std::get_if<Response>(&r)) return std::move(*refused);
  return stream_recording(std::get<RecordingRecord>(r), req, ex);
}

// The player's segmented source for a share link: its index and segments, the code in the same header.
Reply Api::shared_recording_index(const Principal& anonymous, Request& req, const Exchange& ex) {
  auto r = shared_recording(anonymous, req);
  if (auto* refused = std::get_if<Response>(&r)) return std::move(*refused);
  return recording_index(std::get<RecordingRecord>(r), ex);
}

Reply Api::shared_recording_segment(const Principal& anonymous, Request& req, const Exchange& ex) {
  auto r = shared_recording(anonymous, req);
  if (auto* refused = std::get_if<Response>(&r)) return std::move(*refused);
  return recording_segment(std::get<RecordingRecord>(r), req, ex);
}

}  // namespace rx::hub
