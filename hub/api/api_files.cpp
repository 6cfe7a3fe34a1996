// Files of a terminal's machine (docs/files.md): GET (download, or list=1), PUT (upload, the body
// streamed to the agent as its credit allows), DELETE, all through a file channel on the
// terminal's agent (hub/channel/file_transfer.h), run as the terminal's account.
#include <charconv>
#include <map>

#include "hub/api/api.h"
#include "hub/base/json_text.h"
#include "hub/docker/docker.h"
#include "protocol/file_path.h"

namespace rx::hub {
namespace {

// docs/files.md "Paths": what never reaches the agent (the rules are protocol/file_path.h's).
Status file_path_ok(const std::string& path) {
  if (path.empty()) return make_error("bad_path", "path: is required (?path=NAME, relative to the account's home, or absolute)");
  if (auto why = protocol::file_path_problem(path)) return make_error("bad_path", "path: " + *why);
  return Ok{};
}

// The status docs/files.md gives each code of a file operation.
int file_status(const std::string& code) {
  static const std::map<std::string, int> kTable{
      {"bad_path", 400},   {"bad_request", 400},     {"permission_denied", 403}, {"not_found", 404},
      {"is_directory", 409}, {"not_directory", 409}, {"not_regular_file", 409},  {"exists", 409},
      {"not_empty", 409},  {"too_large", 413},       {"agent_offline", 503},     {"no_space", 507},
      {"io_error", 500}};
  auto it = kTable.find(code);
  return it != kTable.end() ? it->second : http_status(code);
}

Response file_error(const Error& e) { return json_response(file_status(e.code), {{"error", e.message}, {"code", e.code}}); }

// Content-Disposition for a name of any bytes: a plain ASCII fallback and the exact UTF-8 name.
std::string disposition(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (name.empty()) name = "download";
  std::string plain;
  for (unsigned char c : name) plain += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? char(c) : '_';
  // RFC 8187's value is the name percent-encoded, as Docker's paths are (hub/docker/docker.h).
  return "attachment; filename=\"" + plain + "\"; filename*=UTF-8''" + percent_encode(name);
}

// One transfer as its HTTP client sees it. Holds the exchange; the transfer holds it back.
class FileAnswer final : public FileClient {
 public:
  FileAnswer(std::shared_ptr<HttpExchange> ex, FileTransfers& files, Metrics& metrics, std::string op, std::string path)
      : ex_(std::move(ex)), files_(files), metrics_(metrics), op_(std::move(op)), path_(std::move(path)) {}
  FileTransfers::Handle handle;
  uint64_t max_bytes = 0;  // a put's cap
  uint64_t received = 0;   // a put's body so far

  void started(const nlohmann::json& status) override {
    if (op_ == "get") {
      Response head;
      head.content_type = "application/octet-stream";
      head.headers.push_back({"Content-Length", std::to_string(status.value("size", uint64_t(0)))});
      head.headers.push_back({"Content-Disposition", disposition(path_)});
      ex_->start_stream(std::move(head));
      streaming_ = true;
    } else if (op_ == "list") {
      Response head;
      head.content_type = "application/json";
      ex_->start_stream(std::move(head));
      ex_->write("{\"path\":" + json_text(nlohmann::json(path_)) + ",\"entries\":[");
      streaming_ = true;
    }
  }
  void data(std::string_view bytes) override {
    if (!streaming_) return;
    metrics_.add("rexec_file_bytes_total", {{"direction", "down"}}, double(bytes.size()));
    if (op_ == "get") {
      ex_->write(bytes);
      return;
    }
    // A listing: one JSON object per line from the agent, joined into the array.
    lines_.append(bytes);
    std::string out;
    for (size_t nl; (nl = lines_.find('\n')) != std::string::npos;) {
      if (nl > 0) {
        if (entries_++) out += ',';
        out.append(lines_, 0, nl);
      }
      lines_.erase(0, nl + 1);
    }
    if (!out.empty()) ex_->write(out);
  }
  size_t backlog() const override { return ex_->backlog(); }
  void room() override { ex_->pause_body(false); }
  void finished(const std::optional<Error>& error, const nlohmann::json& status) override {
    metrics_.add("rexec_file_transfers_total", {{"op", op_}, {"result", error ? error->code : "ok"}});
    if (op_ == "put" && !error) metrics_.add("rexec_file_bytes_total", {{"direction", "up"}}, double(received));
    if (streaming_) {
      // The head went out already: a failure can only cut the answer short, never complete it.
      if (error) return ex_->abort();
      if (op_ == "list") ex_->write("]}");
      return ex_->finish();
    }
    if (error) return ex_->reply(file_error(*error));
    if (op_ == "put")
      return ex_->reply(json_response(201, {{"path", path_}, {"size", status.value("size", received)}}));
    Response done;
    done.status = 204;
    ex_->reply(std::move(done));
  }
  // A put's body as it arrives.
  void body(std::string_view bytes, bool end) {
    received += bytes.size();
    if (received > max_bytes) {
      ex_->pause_body(true);
      return files_.cancel(handle, make_error("too_large", "the upload is over files-max-bytes (" +
                                                               std::to_string(max_bytes) + " bytes)"));
    }
    files_.write(handle, bytes);
    if (end) files_.end_input(handle);
    else if (files_.held(handle) >= kFileUploadBuffer) ex_->pause_body(true);
  }

 private:
  std::shared_ptr<HttpExchange> ex_;
  FileTransfers& files_;
  Metrics& metrics_;
  std::string op_;
  std::string path_;
  bool streaming_ = false;
  std::string lines_;
  size_t entries_ = 0;
};

}  // namespace

Result<FileRequest> Api::file_request(const Principal& p, Request& req, const std::string& op) {
  auto t = find_terminal(p, req.params["id"]);
  if (!t) return t.error();
  auto path = req.query.find("path");
  std::string file = path == req.query.end() ? "" : path->second;
  if (auto s = file_path_ok(file); !s) return s.error();
  FileRequest r;
  r.agent_id = t->agent_id;
  r.op = op;
  r.path = file;
  if (t->agent_id.empty() || !relay_.online(t->agent_id))
    return make_error("agent_offline", "terminal " + t->id + "'s agent is not connected (its machine or container is down)");
  // As the terminal's shell runs: its owner, on the account the owner's grant names there.
  if (t->kind == "agent") {
    r.as.user = p.user.id == t->owner_id ? p.user.name : "";
    if (r.as.user.empty())
      if (auto owner = store_.user_by_id(t->owner_id); owner && *owner) r.as.user = (*owner)->name;
    if (auto grants = store_.grants_of_user(t->owner_id); grants)
      for (const auto& g : *grants)
        if (g.agent_id == t->agent_id) r.as.account = g.unix_user;
  }
  audit(p, "file." + op, t->id, "path=" + file.substr(0, 256));
  return r;
}

Reply Api::start_file(const Principal& p, Request& req, const Exchange& ex, const std::string& op) {
  auto r = file_request(p, req, op);
  if (!r) return file_error(r.error());
  auto answer = std::make_shared<FileAnswer>(ex, relay_.files(), metrics_, op, r->path);
  if (op == "put") {
    answer->max_bytes = uint64_t(config_.files_max_bytes);
    auto length = req.header("content-length");
    uint64_t declared = 0;
    if (length && std::from_chars(length->data(), length->data() + length->size(), declared).ec == std::errc() &&
        declared > answer->max_bytes)
      return file_error(make_error("too_large", "the upload is " + std::to_string(declared) +
                                                    " bytes, over files-max-bytes (" + std::to_string(answer->max_bytes) +
                                                    " bytes)"));
    auto mode = req.query.find("mode");
    if (mode != req.query.end()) {
      uint32_t m = 0;
      auto [end, ec] = std::from_chars(mode->second.data(), mode->second.data() + mode->second.size(), m, 8);
      if (ec != std::errc() || end != mode->second.data() + mode->second.size() || mode->second.empty() || m > 07777)
        return file_error(make_error("bad_request", "mode: must be octal permission bits, 0 to 7777 (0644)"));
      r->mode = m;
    }
    auto overwrite = req.query.find("overwrite");
    if (overwrite != req.query.end() && overwrite->second != "0" && overwrite->second != "1")
      return file_error(make_error("bad_request", "overwrite: must be 0 or 1"));
    r->overwrite = overwrite != req.query.end() && overwrite->second == "1";
  }
  auto handle = relay_.files().start(*r, answer);
  if (!handle) return file_error(handle.error());
  answer->handle = *handle;
  FileTransfers& files = relay_.files();
  FileTransfers::Handle h = *handle;
  // The client went away: the agent's child stops, and an upload's temporary file goes with it.
  ex->on_gone = [&files, h] { files.cancel(h, make_error("cancelled", "the client went away")); };
  ex->on_drain = [&files, h] { files.resume(h); };
  // Weak: the transfer owns the answer, and the answer the exchange (no cycle through on_body).
  if (op == "put")
    ex->on_body = [weak = std::weak_ptr<FileAnswer>(answer)](std::string_view bytes, bool end) {
      if (auto a = weak.lock()) a->body(bytes, end);
    };
  return Later{};
}

Reply Api::get_file(const Principal& p, Request& req, const Exchange& ex) {
  auto list = req.query.find("list");
  if (list != req.query.end() && list->second != "0" && list->second != "1")
    return file_error(make_error("bad_request", "list: must be 0 or 1"));
  return start_file(p, req, ex, list != req.query.end() && list->second == "1" ? "list" : "get");
}

Reply Api::put_file(const Principal& p, Request& req, const Exchange& ex) { return start_file(p, req, ex, "put"); }

Reply Api::delete_file(const Principal& p, Request& req, const Exchange& ex) { return start_file(p, req, ex, "delete"); }

}  // namespace rx::hub
