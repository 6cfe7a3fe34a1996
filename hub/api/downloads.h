// Downloads: what a new machine fetches from the hub to become an agent, all public (no token:
// the enrollment token is the secret, and it never travels here).
//   GET /install-agent.sh   installers/install-agent.sh as built into the hub, with this hub's
//                           URL and the agent unit (systemd/rexec-agent.service) filled in.
//   GET /downloads/NAME     NAME is rexec-agent-linux-amd64 or -arm64, or either + ".sha256".
// The files come from one directory (`downloads-dir`), under those four fixed names only: no
// part of a request ever becomes part of a path. The .sha256 files are written when the binaries
// are placed there (scripts/stage-downloads.sh, the package) and served as they are, never
// computed here: a binary changed after it was placed no longer matches its checksum, and the
// installer refuses it. Binaries are streamed in chunks, not read whole into memory.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "hub/net/http.h"
#include "hub/net/reply.h"
#include "hub/net/server.h"

namespace rx::hub {

// Generated at build time from the source tree (cmake/embed_text.cmake).
std::string_view builtin_installer_script();
std::string_view builtin_agent_unit();

// The architectures the hub serves agents for, as Debian names them.
inline constexpr std::string_view kAgentArchs[] = {"amd64", "arm64"};

class Downloads {
 public:
  explicit Downloads(std::string dir) : dir_(std::move(dir)) {}
  // The installer for a hub reached at `base_url` (http[s]://host[:port]); 400 if that URL could
  // not be written safely into a shell script.
  Response installer(const std::string& base_url) const;
  // GET /downloads/{file}: a JSON 404 naming what is missing, a checksum file, or Later: a binary
  // streamed on `ex` as the client takes it.
  Reply serve(const std::string& file, const std::shared_ptr<HttpExchange>& ex) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace rx::hub
