// FileTransfers: the file channels in flight (docs/files.md, SPEC.md 1.10). One transfer is one
// FILE frame to an agent and what comes back: the agent's status lines on stream 2, the file or
// the listing on stream 1 (ACKed only as fast as the HTTP client takes it, so a slow client holds
// back its transfer and nothing else), the upload on stream 0 (sent only as the agent's credit
// allows, so the hub holds one window of an upload, never the file). Like ExecFanout it talks to
// whoever asked through an interface (FileClient), so nothing here knows HTTP. Loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hub/channel/agent_registry.h"
#include "hub/channel/exec_fanout.h"
#include "hub/link/agent_link.h"
#include "hub/store/store.h"
#include "protocol/codec.h"
#include "protocol/credit_window.h"
#include "protocol/error.h"

namespace rx::hub {

struct FileRequest {
  std::string agent_id;
  std::string op;    // "get" | "put" | "list" | "delete"
  std::string path;  // checked by the API (file_path_ok)
  uint32_t mode = 0;
  bool overwrite = false;
  RunAs as;
};

// Who asked for a transfer, as the transfer sees it.
class FileClient {
 public:
  virtual ~FileClient() = default;
  // The agent's first status line said the operation started ({"ok":true,...}: a download's
  // size, mode and mtime). Not called when it failed at once: finished() says why.
  virtual void started(const nlohmann::json& status) = 0;
  // Bytes of the file or listing, in order. The client may cancel re-entrantly.
  virtual void data(std::string_view bytes) = 0;
  virtual size_t backlog() const = 0;  // bytes given to data() that the client has not taken yet
  // A put: the hub can take more of the upload (what it holds was sent to the agent).
  virtual void room() = 0;
  // The end: nullopt when it succeeded; `status` is the agent's last status line (a put's size).
  virtual void finished(const std::optional<Error>& error, const nlohmann::json& status) = 0;
};

// A transfer holds back its download's ACKs while its client has more than this queued.
inline constexpr size_t kFileClientBacklog = 256 * 1024;
// A put takes more of the upload only while the hub holds less than this of it unsent.
inline constexpr size_t kFileUploadBuffer = 256 * 1024;

class FileTransfers {
 public:
  struct Transfer;
  using Handle = std::weak_ptr<Transfer>;

  FileTransfers(Store& store, AgentRegistry& agents);
  ~FileTransfers();

  // Sends the FILE frame. Errors: agent_offline, or the store's (a channel number).
  Result<Handle> start(const FileRequest& request, std::shared_ptr<FileClient> client);
  // A put's next bytes; held until the agent's credit takes them (held() says how many wait).
  void write(const Handle& h, std::string_view bytes);
  size_t held(const Handle& h) const;
  // The upload is complete: the agent's child puts the file in place once it has every byte.
  void end_input(const Handle& h);
  // The client went away or the upload is refused (too large): the agent's child is stopped and
  // removes what it wrote; finished() comes once the agent says the channel is gone (`error`).
  void cancel(const Handle& h, const Error& error);
  // The client took what was queued: ACKs held back go out.
  void resume(const Handle& h);

  // A file channel's DATA or frame; false when (agent, channel) is not one.
  bool on_data(AgentLink& link, const protocol::DataView& data);
  bool on_frame(AgentLink& link, uint32_t channel, const protocol::Frame& frame);
  // The agent's link went down: its transfers end with agent_offline.
  void agent_gone(const std::string& agent_id);
  size_t active() const { return transfers_.size(); }

 private:
  void pump(Transfer& t);
  void ack(Transfer& t);
  void deliver(Transfer& t, std::string_view bytes);
  void status_line(Transfer& t, std::string_view line);
  void finish(Transfer& t, std::optional<Error> error);

  Store& store_;
  AgentRegistry& agents_;
  std::map<std::pair<std::string, uint32_t>, std::shared_ptr<Transfer>> transfers_;
};

}  // namespace rx::hub
