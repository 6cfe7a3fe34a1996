#include "hub/api/exec_stream.h"

#include <algorithm>
#include <cctype>

namespace rx::hub {
namespace {

class HttpExecClient final : public ExecClient {
 public:
  explicit HttpExecClient(std::shared_ptr<HttpExchange> exchange) : ex_(std::move(exchange)) {}
  void line(const std::string& line) override { ex_->write(line); }
  size_t backlog() const override { return ex_->backlog(); }
  bool gone() const override { return ex_->gone(); }
  void done(nlohmann::json answer) override {
    if (answer.is_null()) return ex_->finish();
    ex_->reply(json_response(200, answer));
  }

 private:
  std::shared_ptr<HttpExchange> ex_;
};

}  // namespace

bool wants_ndjson(const Request& request) {
  auto accept = request.header("accept");
  if (!accept) return false;
  std::string_view rest = *accept;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    item = item.substr(0, item.find(';'));
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (std::ranges::equal(item, kNdjson, [](char a, char b) { return std::tolower((unsigned char)a) == b; }))
      return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

void exec_over_http(ExecFanout& fanout, std::vector<AgentRecord> targets, const ExecRequest& request,
                    std::shared_ptr<HttpExchange> exchange) {
  auto run = fanout.add(std::move(targets), request, std::make_shared<HttpExecClient>(exchange));
  // The exchange may outlive the run (a stream still draining): it holds only the weak handle.
  exchange->on_gone = [&fanout, run] { fanout.cancel(run); };
  if (request.stream) {
    exchange->on_drain = [&fanout, run] { fanout.resume(run); };
    Response head;
    head.content_type = std::string(kNdjson);
    exchange->start_stream(std::move(head));
  }
  fanout.start(run);
}

}  // namespace rx::hub
