// Test and benchmark clients for the hub, over plain blocking sockets (RFC 6455 framing by hand):
// a test must be able to do what no polite client does — send malformed or oversized frames,
// stop reading, cut the connection — and a benchmark client must never be the bottleneck.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rx::test {

struct HttpResult {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// The status and headers (names lower-cased) of a response head, up to its empty line.
HttpResult parse_head(const std::string& head);

// A client frame (masked, FIN set) as it goes on the wire.
std::vector<uint8_t> client_frame(uint8_t opcode, const std::vector<uint8_t>& payload, bool fin = true);

// One HTTP/1.1 request on a fresh connection (Connection: close).
// `timeout`: how long to wait for the response's head.
// A chunked answer's body comes without its framing.
HttpResult http(int port, const std::string& method, const std::string& path, const std::string& token = "",
                const std::string& body = "", const std::map<std::string, std::string>& headers = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

class WsClient {
 public:
  struct Message {
    bool binary = true;
    std::vector<uint8_t> data;
  };

  WsClient() = default;
  ~WsClient();
  WsClient(WsClient&& o) noexcept;
  WsClient& operator=(WsClient&&) = delete;

  // Connects and upgrades. On a refused upgrade, returns false and fills `refusal` with the
  // HTTP status and body the hub sent.
  bool connect(int port, const std::string& path, const std::string& protocol,
               const std::map<std::string, std::string>& headers, HttpResult* refusal = nullptr);
  bool connected() const { return fd_ >= 0; }
  // Set before connect(): the local address to dial from (another loopback address, e.g.
  // "127.0.0.2", poses as another client IP) and a receive buffer size (small: a viewer that
  // reads nothing fills up fast). Empty / 0: the system's defaults.
  std::string source_ip;
  int rcvbuf = 0;

  bool send_binary(const std::vector<uint8_t>& data) { return send_frame(0x2, data, true); }
  bool send_text(const std::string& text) { return send_frame(0x1, {text.begin(), text.end()}, true); }
  bool send_frame(uint8_t opcode, const std::vector<uint8_t>& payload, bool fin);
  bool send_raw(const std::vector<uint8_t>& bytes);
  // Sends one masked frame only if the socket takes all of it now (never blocks: a flooding test
  // must not hang on a hub that stopped reading it). False when it did not fit or the socket is gone.
  enum class TrySend { kSent, kFull, kGone };
  TrySend try_send_frame(uint8_t opcode, const std::vector<uint8_t>& payload);
  // The same for bytes already framed (client_frame), e.g. many frames at once.
  TrySend try_send_raw(const std::vector<uint8_t>& bytes);

  // The next data message (pings are answered on the way). nullopt on timeout or close.
  std::optional<Message> receive(std::chrono::milliseconds timeout);
  // After the peer closed: its close code and reason.
  std::optional<uint16_t> close_code() const { return close_code_; }
  const std::string& close_reason() const { return close_reason_; }
  // After answering the peer's close, keep the socket open (a test then reads what else comes
  // with read_rest(): a well-behaved peer sends nothing more and hangs up).
  bool linger_after_close = false;
  // Every byte the peer still sends until it hangs up (or the timeout).
  std::vector<uint8_t> read_rest(std::chrono::milliseconds timeout);
  void close();        // polite close frame, then shut
  void cut();          // RST-like: close the socket without a close frame
  int fd() const { return fd_; }

 private:
  // Reads until at least n bytes are buffered; false on timeout or when the peer is gone.
  bool fill(size_t n, std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::vector<uint8_t> buffered_;  // bytes read but not yet taken as a whole frame
  Message partial_;                // a fragmented message being received
  bool in_message_ = false;
  std::optional<uint16_t> close_code_;
  std::string close_reason_;
};

}  // namespace rx::test
