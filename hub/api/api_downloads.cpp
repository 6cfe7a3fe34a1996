// The installer and the agent binaries, public (hub/api/downloads.h), rate limited per client address.
#include "hub/api/api.h"

namespace rx::hub {

std::string Api::installer_base(const Request& req) const {
  if (!config_.public_url.empty()) return config_.public_url;
  std::string scheme = config_.tls_cert.empty() ? "http://" : "https://";
  auto colon = config_.listen.rfind(':');
  std::string host = config_.listen.substr(0, colon);
  if (host != "0.0.0.0" && host != "[::]" && host != "::" && !host.empty()) return scheme + config_.listen;
  // Downloads::installer() refuses a Host that is not a plain host[:port].
  return scheme + req.header("host").value_or("localhost");
}

Reply Api::serve_installer(const Principal&, Request& req) {
  if (auto r = limited(ip_requests_, req.peer, "ip")) return std::move(*r);
  return downloads_.installer(installer_base(req));
}

Reply Api::serve_download(const Principal&, Request& req, const Exchange& ex) {
  if (auto r = limited(ip_requests_, req.peer, "ip")) return std::move(*r);
  return downloads_.serve(req.params["file"], ex);
}

}  // namespace rx::hub
