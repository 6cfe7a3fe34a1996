// The dashboard: its files (hub/net/web.h), the image list its create dialog offers, and its
// events feed (hub/fanout/events.h).
#include "hub/api/api.h"
#include "hub/fanout/events.h"

namespace rx::hub {

Reply Api::serve_web(const Principal&, Request& req) {
  bool gzip = req.header("accept-encoding").value_or("").find("gzip") != std::string::npos;
  return web_.get(req.path, gzip);
}

Reply Api::list_images(const Principal&, Request&, const Exchange& ex) {
  containers_.list_images(replying(ex, [](Result<nlohmann::json> images) -> Reply {
    if (!images) return images.error();
    return json_response(200, {{"images", *images}});
  }));
  return Later{};
}

std::variant<std::unique_ptr<WsSession>, Response> Api::events_upgrade(Request& req) {
  if (!events_) return error_response(make_error("unavailable", "this hub has no events feed"));
  auto admitted = admit(req);
  if (auto* refusal = std::get_if<Response>(&admitted)) return std::move(*refusal);
  auto& p = std::get<Principal>(admitted);
  if (!p.can("read")) return error_response(make_error("forbidden", "this token lacks the read scope"));
  return std::unique_ptr<WsSession>(new EventsSession(*events_, p.user.id, p.is_admin()));
}

}  // namespace rx::hub
