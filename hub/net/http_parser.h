// The hub's HTTP/1.1 request parser: the strict front every byte from the network meets first.
// Pure functions over bytes (no I/O), so the fuzzer and the unit tests drive exactly what the
// server runs. It follows RFC 9112's framing rules to the letter where being lenient lets two
// parsers disagree about where a request ends (request smuggling): CRLF line ends only, no
// obs-fold, no whitespace before a field's colon, Content-Length digits only and at most once,
// Transfer-Encoding and Content-Length never together, exactly one Host on HTTP/1.1. Anything
// refused gets a status and a JSON-ready error code; the server answers it and closes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rx::hub {

struct HeadLimits {
  size_t max_head = 16 * 1024;   // request line + fields + the empty line: more is 431
  size_t max_field = 8 * 1024;   // one field line: more is 431
  size_t max_fields = 100;       // more is 431
  size_t max_target = 14 * 1024;  // the request target: more is 414 (a 4,096-byte file path, percent-encoded, fits)
};

// A refusal: the status to answer, a machine code and a sentence naming what was wrong.
struct HttpError {
  int status = 400;
  std::string code = "bad_request";
  std::string message;
};

enum class BodyKind { kNone, kLength, kChunked };

struct RequestHead {
  std::string method;  // one of kMethods
  std::string target;  // as sent
  std::string path;    // percent-decoded, valid UTF-8, no NUL, no encoded '/', no dot segments
  std::map<std::string, std::string> query;  // decoded ('+' is a space), valid UTF-8
  int minor = 1;                             // HTTP/1.<minor>
  // Lower-case names. A field sent twice is joined with ", " (RFC 9110 5.3), except the ones
  // that must be single (kSingleFields), which are refused when repeated.
  std::map<std::string, std::string> fields;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool upgrade = false;          // Connection: upgrade + Upgrade: websocket
  bool expect_continue = false;  // Expect: 100-continue
};

struct HeadParse {
  enum State { kIncomplete, kError, kDone } state = kIncomplete;
  size_t length = 0;  // bytes the head took, its empty line included (kDone)
  RequestHead head;
  HttpError error;
};

// Parses one request head from the start of `bytes` (up to a few empty lines before it are
// skipped, as RFC 9112 2.2 asks). kIncomplete: wait for more bytes — unless the limits are
// already exceeded, which is kError at once, so a slow sender never holds more than max_head.
HeadParse parse_request_head(std::string_view bytes, const HeadLimits& limits = {});

// Decodes a request body framed as the head says, across as many reads as it takes.
class BodyReader {
 public:
  BodyReader() = default;
  BodyReader(BodyKind kind, uint64_t length, size_t max_body);
  // Consumes what belongs to the body from `in` (never more), appends the decoded bytes to
  // `out`, and returns how many bytes of `in` it took.
  size_t feed(std::string_view in, std::string& out);
  bool done() const { return state_ == State::kDone; }
  const std::optional<HttpError>& error() const { return error_; }
  // Body bytes decoded so far.
  uint64_t received() const { return received_; }

 private:
  enum class State { kLength, kChunkSize, kChunkData, kChunkDataEnd, kTrailer, kDone, kError };
  size_t fail(int status, std::string code, std::string message);
  State state_ = State::kDone;
  uint64_t remaining_ = 0;  // of the body (kLength) or of the chunk (kChunkData)
  uint64_t received_ = 0;
  size_t max_body_ = 0;
  std::string line_;        // a chunk-size or trailer line being read
  size_t trailer_bytes_ = 0;
  std::optional<HttpError> error_;
};

// Percent-decodes `s` ('+' as a space when asked). Refuses bad escapes, NUL, and results that
// are not valid UTF-8 (every such string ends up in JSON, logs or the store).
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

}  // namespace rx::hub
