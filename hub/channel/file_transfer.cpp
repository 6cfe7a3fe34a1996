#include "hub/channel/file_transfer.h"

#include <algorithm>
#include <utility>

#include "hub/channel/frame_errors.h"
#include "protocol/limits.h"
#include "protocol/log_line.h"

namespace rx::hub {

using namespace protocol;

namespace {

// The agent's status lines are a few hundred bytes; more than this on stream 2 is not one.
constexpr size_t kMaxStatusBytes = 16 * 1024;

}  // namespace

struct FileTransfers::Transfer {
  std::string agent_id;
  uint32_t channel = 0;
  std::string op;
  std::shared_ptr<FileClient> client;
  ReceiveCursor out_cursor{kDefaultWindow}, err_cursor{kDefaultWindow};
  CreditWindow in_credit{kDefaultWindow};
  std::string upload;        // taken from the client, not yet sent to the agent
  bool input_ended = false;  // the client's upload is complete
  bool end_sent = false;     // ...and the agent was told (the empty DATA)
  std::string err_text;      // stream 2 not yet split into lines
  std::string early;         // output that came before the status line that starts it
  bool started = false;      // the first status line was {"ok":true}
  nlohmann::json last_status = nlohmann::json::object();
  std::optional<Error> failure;  // from a status line, an ERROR frame or a cancel
  std::optional<int32_t> exit_code;
  bool held = false;  // ACKs held back while the client is behind
  bool cancelled = false;
  bool done = false;
};

FileTransfers::FileTransfers(Store& store, AgentRegistry& agents) : store_(store), agents_(agents) {}
FileTransfers::~FileTransfers() = default;

Result<FileTransfers::Handle> FileTransfers::start(const FileRequest& r, std::shared_ptr<FileClient> client) {
  AgentLink* link = agents_.link(r.agent_id);
  if (!link) return make_error("agent_offline", "the terminal's agent is not connected");
  auto channel = store_.next_channel(r.agent_id);
  if (!channel) return channel.error();
  auto t = std::make_shared<Transfer>();
  t->agent_id = r.agent_id;
  t->channel = *channel;
  t->op = r.op;
  t->client = std::move(client);
  transfers_[{r.agent_id, t->channel}] = t;
  log("info", "file.start", {{"agent", r.agent_id}, {"channel", std::to_string(t->channel)}, {"op", r.op}});
  // A send that closes the link ends the transfer (agent_gone): the handle then says so.
  link->send(FileOpen{t->channel, r.op, r.path, kDefaultWindow, r.mode, r.overwrite ? kFileOverwrite : 0u, r.as.user,
                      r.as.account});
  if (!t->done && r.op != "put") link->send(Data{t->channel, Stream::kInput, 0, {}});  // nothing to send: stdin ends
  return Handle(t);
}

void FileTransfers::write(const Handle& h, std::string_view bytes) {
  auto t = h.lock();
  if (!t || t->done || t->input_ended) return;
  t->upload.append(bytes);
  pump(*t);
}

size_t FileTransfers::held(const Handle& h) const {
  auto t = h.lock();
  return t && !t->done ? t->upload.size() : 0;
}

void FileTransfers::end_input(const Handle& h) {
  auto t = h.lock();
  if (!t || t->done) return;
  t->input_ended = true;
  pump(*t);
}

void FileTransfers::pump(Transfer& t) {
  AgentLink* link = agents_.link(t.agent_id);
  if (!link || t.done || t.cancelled) return;
  while (!t.upload.empty() && t.in_credit.available() > 0) {
    size_t n = std::min({t.upload.size(), t.in_credit.available(), kMaxChunk});
    uint64_t offset = t.in_credit.sent();
    (void)t.in_credit.on_sent(n);
    // DATA copies the bytes into its frame; erase after, the span points into upload.
    link->send_data(t.channel, Stream::kInput, offset,
                    std::span(reinterpret_cast<const uint8_t*>(t.upload.data()), n));
    if (t.done) return;  // the send closed the link
    t.upload.erase(0, n);
  }
  if (t.input_ended && t.upload.empty() && !t.end_sent) {
    t.end_sent = true;
    link->send(Data{t.channel, Stream::kInput, t.in_credit.sent(), {}});
  }
}

void FileTransfers::cancel(const Handle& h, const Error& error) {
  auto t = h.lock();
  if (!t || t->done || t->cancelled) return;
  t->cancelled = true;
  if (!t->failure) t->failure = error;
  t->upload.clear();
  AgentLink* link = agents_.link(t->agent_id);
  if (!link) return finish(*t, t->failure);
  // CLOSE: the agent hangs the child up, which removes its temporary file, then answers CLOSE.
  link->send(Close{t->channel, "file transfer cancelled: " + error.message});
}

void FileTransfers::resume(const Handle& h) {
  auto t = h.lock();
  if (!t || t->done || !t->held) return;
  t->held = false;
  ack(*t);
}

void FileTransfers::ack(Transfer& t) {
  AgentLink* link = agents_.link(t.agent_id);
  if (t.done || !link) return;
  // Once the child exited, everything taken is ACKed at once: the agent sends CLOSE only when
  // all of its output is acknowledged, and the last bytes may be under a quarter window.
  if (auto a = t.out_cursor.take_ack(t.exit_code.has_value())) link->send(Ack{t.channel, Stream::kOutput, *a});
}

bool FileTransfers::on_data(AgentLink& link, const DataView& d) {
  auto it = transfers_.find({link.agent().id, d.channel});
  if (it == transfers_.end()) return false;
  auto t = it->second;  // finish() may drop the map's reference
  if (d.stream == Stream::kInput || t->done) return true;
  auto& cursor = d.stream == Stream::kStderr ? t->err_cursor : t->out_cursor;
  auto accept = cursor.on_data(d.offset, d.bytes.size());
  if (accept.skip >= d.bytes.size()) return true;
  std::string_view bytes(reinterpret_cast<const char*>(d.bytes.data() + accept.skip), d.bytes.size() - accept.skip);
  if (d.stream == Stream::kStderr) {
    cursor.on_consumed(cursor.received());
    if (auto a = cursor.take_ack(true)) link.send(Ack{t->channel, Stream::kStderr, *a});
    t->err_text.append(bytes);
    if (t->err_text.size() > kMaxStatusBytes) {
      t->err_text.clear();
      t->failure = make_error("io_error", "the agent's status for this transfer was not understood");
    }
    for (size_t nl; (nl = t->err_text.find('\n')) != std::string::npos && !t->done;) {
      std::string line = t->err_text.substr(0, nl);
      t->err_text.erase(0, nl + 1);
      status_line(*t, line);
    }
    return true;
  }
  // Output (the file, the listing). The agent reads the child's two pipes in its own order, so
  // output may come before the status line that starts it: held until then (at most one credit
  // window, as it is not ACKed meanwhile). Dropped once the transfer failed or was cancelled.
  if (t->cancelled || t->failure) {
    cursor.on_consumed(cursor.received());
    if (auto a = cursor.take_ack(true)) link.send(Ack{t->channel, Stream::kOutput, *a});
    return true;
  }
  if (!t->started) {
    t->early.append(bytes);
    return true;
  }
  deliver(*t, bytes);
  return true;
}

void FileTransfers::deliver(Transfer& t, std::string_view bytes) {
  t.out_cursor.on_consumed(t.out_cursor.received());
  t.client->data(bytes);
  if (t.done || t.cancelled) return;
  if (t.client->backlog() > kFileClientBacklog) t.held = true;
  else ack(t);
}

void FileTransfers::status_line(Transfer& t, std::string_view line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
    if (!t.failure) t.failure = make_error("io_error", "the agent's status for this transfer was not understood");
    return;
  }
  t.last_status = j;
  if (!j["ok"].get<bool>()) {
    // The first failure is the one to report (a second line may follow it).
    if (!t.failure) t.failure = Error{j.value("code", "io_error"), j.value("message", "the file operation failed")};
    return;
  }
  if (!t.started) {
    t.started = true;
    if (t.cancelled) return;
    t.client->started(j);
    if (!t.early.empty() && !t.done && !t.cancelled) deliver(t, std::exchange(t.early, {}));
  }
}

bool FileTransfers::on_frame(AgentLink& link, uint32_t channel, const Frame& frame) {
  auto it = transfers_.find({link.agent().id, channel});
  if (it == transfers_.end()) return false;
  auto t = it->second;
  if (auto* a = std::get_if<Ack>(&frame)) {
    if (a->stream == Stream::kInput && t->in_credit.on_ack(a->offset).ok()) {
      pump(*t);
      if (!t->done && !t->cancelled && t->upload.size() < kFileUploadBuffer) t->client->room();
    }
  } else if (auto* e = std::get_if<Exit>(&frame)) {
    t->exit_code = e->code;
    if (!t->held) ack(*t);
  } else if (auto* err = std::get_if<ErrorFrame>(&frame)) {
    if (!t->failure) t->failure = agent_error(*err);
  } else if (std::holds_alternative<Close>(frame)) {
    // CLOSE follows the last DATA and the EXIT: the child is gone, and with it any temporary file.
    std::optional<Error> error = t->failure;
    if (!error && (!t->exit_code || *t->exit_code != 0))
      error = make_error("io_error", "the agent's file operation ended without finishing (exit " +
                                         (t->exit_code ? std::to_string(*t->exit_code) : std::string("unknown")) + ")");
    finish(*t, error);
  }
  return true;
}

void FileTransfers::agent_gone(const std::string& agent_id) {
  std::vector<std::shared_ptr<Transfer>> gone;
  for (auto& [key, t] : transfers_)
    if (key.first == agent_id) gone.push_back(t);
  // A cancelled one ends as its cancel said (cancel() always sets the failure).
  for (auto& t : gone)
    finish(*t, t->cancelled ? t->failure : make_error("agent_offline", "the agent disconnected during the transfer"));
}

void FileTransfers::finish(Transfer& t, std::optional<Error> error) {
  if (t.done) return;
  t.done = true;
  auto keep = transfers_.extract({t.agent_id, t.channel});  // out of the map, alive until we return
  log("info", "file.end", {{"agent", t.agent_id}, {"channel", std::to_string(t.channel)}, {"op", t.op},
                           {"result", error ? error->code : "ok"}});
  auto client = std::move(t.client);
  if (client) client->finished(error, t.last_status);
}

}  // namespace rx::hub
