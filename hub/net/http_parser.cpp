#include "hub/net/http_parser.h"

#include <algorithm>
#include <array>

#include "protocol/viewer.h"

namespace rx::hub {
namespace {

// Methods the hub serves. Anything else (CONNECT and TRACE among them) is 501 at the front.
constexpr std::array<std::string_view, 7> kMethods = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
// Fields whose repetition changes what the request means, or means a confused or hostile sender.
constexpr std::array<std::string_view, 9> kSingleFields = {
    "host",   "content-length",   "authorization",         "content-type",        "origin",
    "cookie", "sec-websocket-key", "sec-websocket-version", "x-rexec-agent-name"};
constexpr int kMaxEmptyLines = 4;

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
}

// VCHAR, obs-text, SP and HTAB: what a field value may hold (RFC 9110 5.5).
bool is_field_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// What may appear unencoded in a request target (RFC 3986 unreserved, sub-delims, ":@/?%").
bool is_target_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("-._~!$&'()*+,;=:@/?%").find(char(c)) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each element of a comma-separated list, lower-cased and trimmed.
template <typename Fn>
void for_each_token(std::string_view list, Fn fn) {
  while (true) {
    auto comma = list.find(',');
    auto token = trim_ows(list.substr(0, comma));
    if (!token.empty()) fn(lower(token));
    if (comma == std::string_view::npos) return;
    list.remove_prefix(comma + 1);
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

HeadParse refuse(int status, std::string code, std::string message) {
  HeadParse p;
  p.state = HeadParse::kError;
  p.error = HttpError{status, std::move(code), std::move(message)};
  return p;
}

HeadParse bad(std::string message) { return refuse(400, "bad_request", std::move(message)); }

// Splits the target into path and query and decodes both. Empty string: fine.
std::string parse_target(RequestHead& h, const HeadLimits& limits) {
  std::string_view t = h.target;
  if (t.size() > limits.max_target) return "uri";
  for (unsigned char c : t)
    if (!is_target_char(c)) return "the request target has a byte that is not allowed in a URI";
  // absolute-form (RFC 9112 3.2.2): a server must accept it; only its path and query count.
  if (t.size() > 7 && (lower(t.substr(0, 7)) == "http://" || (t.size() > 8 && lower(t.substr(0, 8)) == "https://"))) {
    auto slash = t.find('/', t.find("//") + 2);
    t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
  }
  if (t.empty() || t.front() != '/') return "the request target must be a path starting with '/'";
  auto qmark = t.find('?');
  std::string_view raw_path = t.substr(0, qmark);
  // Encoded '/' would let "a%2Fb" pose as two segments; an encoded NUL cuts C strings short.
  for (size_t i = 0; i + 2 < raw_path.size(); ++i)
    if (raw_path[i] == '%' && (raw_path.substr(i + 1, 2) == "00" || lower(raw_path.substr(i + 1, 2)) == "2f"))
      return "encoded '/' or NUL in the path";
  auto path = percent_decode(raw_path, false);
  if (!path) return "the path has a bad percent-escape, a NUL, or bytes that are not UTF-8";
  // Dot segments are not resolved: no route has one, and resolving them is where servers and
  // proxies disagree.
  for (std::string_view rest = *path; !rest.empty();) {
    rest.remove_prefix(1);  // the '/'
    auto seg = rest.substr(0, rest.find('/'));
    if (seg == "." || seg == "..") return "dot segments ('.' or '..') are not allowed in the path";
    rest.remove_prefix(seg.size());
  }
  h.path = std::move(*path);
  if (qmark == std::string_view::npos) return "";
  std::string_view query = t.substr(qmark + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (!key || !value) return "the query has a bad percent-escape, a NUL, or bytes that are not UTF-8";
    // Two values for one name: which one a check reads and which one a use reads may differ.
    if (!h.query.emplace(std::move(*key), std::move(*value)).second)
      return "a query parameter is given twice";
  }
  return "";
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = char(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  if (!protocol::viewer::valid_utf8(out)) return std::nullopt;
  return out;
}

HeadParse parse_request_head(std::string_view bytes, const HeadLimits& limits) {
  // Skip the empty lines a client may send before a request (after a POST body, say).
  size_t start = 0;
  for (int i = 0; i < kMaxEmptyLines && bytes.substr(start, 2) == "\r\n"; ++i) start += 2;
  auto end = bytes.find("\r\n\r\n", start);
  size_t head_len = end == std::string_view::npos ? bytes.size() - start : end + 4 - start;
  if (head_len > limits.max_head)
    return refuse(431, "headers_too_large",
                  "the request head is over the limit of " + std::to_string(limits.max_head) + " bytes");
  std::string_view head = bytes.substr(start, end == std::string_view::npos ? bytes.size() - start : end + 2 - start);
  // Even an incomplete head is checked line by line so far: a bare LF or an over-long line is
  // refused now, not after the sender has trickled in max_head bytes.
  HeadParse p;
  RequestHead& h = p.head;
  size_t fields = 0;
  bool first = true;
  std::string_view rest = head;
  while (!rest.empty()) {
    auto eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    bool complete_line = eol != std::string_view::npos;
    // A line still arriving may end in the CR of its CRLF.
    if (!complete_line && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos)
      return bad("a line ends in a bare CR or LF (HTTP lines end in CRLF)");
    if (first) {
      if (line.size() > limits.max_target + 32) return refuse(414, "uri_too_long", "the request target is over the limit of " + std::to_string(limits.max_target) + " bytes");
    } else if (line.size() > limits.max_field) {
      return refuse(431, "headers_too_large",
                    "a header field is over the limit of " + std::to_string(limits.max_field) + " bytes");
    }
    if (!complete_line) break;  // the rest is still arriving
    rest.remove_prefix(eol + 2);
    if (first) {
      first = false;
      auto sp1 = line.find(' ');
      auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
        return bad("the request line must be METHOD SP TARGET SP HTTP-VERSION");
      std::string_view method = line.substr(0, sp1), version = line.substr(sp2 + 1);
      h.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
      if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) { return is_tchar(c); }))
        return bad("the request method is not a token");
      if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || !std::isdigit(version[5]) ||
          !std::isdigit(version[7]))
        return bad("the HTTP version is malformed");
      if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
        return refuse(505, "version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served here");
      h.minor = version[7] - '0';
      if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end())
        return refuse(501, "not_implemented", "method " + std::string(method) + " is not served here");
      h.method = std::string(method);
      if (h.target.empty()) return bad("the request target is empty");
      if (auto why = parse_target(h, limits); !why.empty()) {
        if (why == "uri")
          return refuse(414, "uri_too_long", "the request target is over the limit of " + std::to_string(limits.max_target) + " bytes");
        return bad(why);
      }
      continue;
    }
    if (line.empty()) break;  // (only at the very end: `head` stops before the empty line)
    if (++fields > limits.max_fields)
      return refuse(431, "headers_too_large", "more than " + std::to_string(limits.max_fields) + " header fields");
    if (line.front() == ' ' || line.front() == '\t')
      return bad("obsolete line folding (a field line starting with whitespace) is not accepted");
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad("a header field has no name");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), [](char c) { return is_tchar(c); }))
      return bad("a header field name has whitespace or a byte that is not allowed");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), [](char c) { return is_field_char(c); }))
      return bad("header field " + std::string(name) + " has a control byte");
    std::string key = lower(name);
    auto [it, inserted] = h.fields.emplace(key, std::string(value));
    if (!inserted) {
      if (std::find(kSingleFields.begin(), kSingleFields.end(), key) != kSingleFields.end())
        return bad("header field " + key + " is given more than once");
      it->second += ", ";
      it->second += value;
    }
  }
  if (end == std::string_view::npos) return p;  // kIncomplete
  if (first) return bad("empty request");

  p.length = end + 4;
  auto field = [&](const char* name) -> const std::string* {
    auto it = h.fields.find(name);
    return it == h.fields.end() ? nullptr : &it->second;
  };
  const std::string* host = field("host");
  if (h.minor == 1 && !host) return bad("an HTTP/1.1 request needs a Host header");
  if (host && (host->empty() || host->find_first_of(" \t/\\@") != std::string::npos))
    return bad("the Host header is not a host[:port]");

  const std::string* te = field("transfer-encoding");
  const std::string* cl = field("content-length");
  if (te) {
    // RFC 9112 6.1 and 6.3: Transfer-Encoding with Content-Length is how requests are smuggled
    // past a proxy that reads the other one; HTTP/1.0 has no chunked framing.
    if (cl) return bad("Transfer-Encoding and Content-Length together are refused");
    if (h.minor == 0) return bad("Transfer-Encoding is not defined for HTTP/1.0");
    std::vector<std::string> codings;
    for_each_token(*te, [&](std::string t) { codings.push_back(std::move(t)); });
    if (codings.size() != 1 || codings[0] != "chunked")
      return refuse(501, "not_implemented", "only Transfer-Encoding: chunked is accepted");
    h.body = BodyKind::kChunked;
  } else if (cl) {
    if (cl->empty() || cl->size() > 18 || !std::all_of(cl->begin(), cl->end(), [](char c) { return c >= '0' && c <= '9'; }))
      return bad("Content-Length must be one decimal number");
    h.content_length = std::stoull(*cl);
    h.body = h.content_length > 0 ? BodyKind::kLength : BodyKind::kNone;
  }

  bool conn_close = false, conn_keep = false, conn_upgrade = false, ws = false;
  if (auto* c = field("connection"))
    for_each_token(*c, [&](const std::string& t) {
      conn_close |= t == "close";
      conn_keep |= t == "keep-alive";
      conn_upgrade |= t == "upgrade";
    });
  if (auto* u = field("upgrade")) for_each_token(*u, [&](const std::string& t) { ws |= t == "websocket"; });
  h.keep_alive = !conn_close && (h.minor == 1 || conn_keep);
  h.upgrade = conn_upgrade && ws;
  if (h.upgrade && h.body != BodyKind::kNone) return bad("a WebSocket upgrade has no body");
  if (auto* e = field("expect")) {
    if (lower(*e) != "100-continue") return refuse(417, "expectation_failed", "only Expect: 100-continue is understood");
    h.expect_continue = h.body != BodyKind::kNone;
  }
  p.state = HeadParse::kDone;
  return p;
}

// ---- BodyReader -------------------------------------------------------------------------------

BodyReader::BodyReader(BodyKind kind, uint64_t length, size_t max_body) : max_body_(max_body) {
  if (kind == BodyKind::kLength) {
    state_ = State::kLength;
    remaining_ = length;
    if (length > max_body) fail(413, "body_too_large", "request body of " + std::to_string(length) + " bytes is over the limit of " + std::to_string(max_body));
  } else if (kind == BodyKind::kChunked) {
    state_ = State::kChunkSize;
  }
}

size_t BodyReader::fail(int status, std::string code, std::string message) {
  state_ = State::kError;
  error_ = HttpError{status, std::move(code), std::move(message)};
  return 0;
}

size_t BodyReader::feed(std::string_view in, std::string& out) {
  constexpr size_t kMaxLine = 4096;       // a chunk-size line with its extensions
  constexpr size_t kMaxTrailers = 8192;   // trailer fields, read and dropped
  size_t used = 0;
  while (used < in.size() && state_ != State::kDone && state_ != State::kError) {
    std::string_view rest = in.substr(used);
    switch (state_) {
      case State::kLength:
      case State::kChunkData: {
        size_t n = size_t(std::min<uint64_t>(remaining_, rest.size()));
        out.append(rest.substr(0, n));
        used += n;
        remaining_ -= n;
        received_ += n;
        if (remaining_ == 0) state_ = state_ == State::kLength ? State::kDone : State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd: {
        // The CRLF after a chunk's data, possibly split across reads.
        size_t n = std::min(2 - line_.size(), rest.size());
        line_.append(rest.substr(0, n));
        used += n;
        if (line_.size() < 2) break;
        if (line_ != "\r\n") return fail(400, "bad_request", "a chunk's data is not followed by CRLF");
        line_.clear();
        state_ = State::kChunkSize;
        break;
      }
      case State::kChunkSize:
      case State::kTrailer: {
        auto nl = rest.find('\n');
        size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
        line_.append(rest.substr(0, take));
        used += take;
        if (state_ == State::kTrailer && (trailer_bytes_ += take) > kMaxTrailers)
          return fail(431, "headers_too_large", "the chunked body's trailer fields are over the limit");
        if (line_.size() > kMaxLine) return fail(400, "bad_request", "a chunk-size line is too long");
        if (nl == std::string_view::npos) break;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r')
          return fail(400, "bad_request", "a line of the chunked body ends in a bare LF");
        std::string_view l(line_.data(), line_.size() - 2);
        if (state_ == State::kTrailer) {
          if (l.empty()) state_ = State::kDone;
          else if (l.find('\r') != std::string_view::npos) return fail(400, "bad_request", "a trailer field has a bare CR");
          line_.clear();
          break;
        }
        auto semi = l.find(';');  // chunk extensions are allowed and ignored
        std::string_view size = l.substr(0, semi);
        if (size.empty() || size.size() > 15)
          return fail(400, "bad_request", "a chunk size is missing or too long");
        uint64_t n = 0;
        for (char c : size) {
          int v = hex_value(c);
          if (v < 0) return fail(400, "bad_request", "a chunk size is not hexadecimal");
          n = n * 16 + uint64_t(v);
        }
        if (semi != std::string_view::npos && l.substr(semi).find_first_of("\r\n") != std::string_view::npos)
          return fail(400, "bad_request", "a chunk extension has a bare CR");
        line_.clear();
        if (received_ + n > max_body_)
          return fail(413, "body_too_large", "the request body is over the limit of " + std::to_string(max_body_) + " bytes");
        if (n == 0) {
          state_ = State::kTrailer;
        } else {
          remaining_ = n;
          state_ = State::kChunkData;
        }
        break;
      }
      default:
        break;
    }
  }
  return used;
}

}  // namespace rx::hub
