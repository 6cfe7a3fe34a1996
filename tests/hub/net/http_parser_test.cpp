// hub/net/http_parser.cpp: the strict front. Every refusal here is a request some other parser on the
// path (a proxy, a balancer) might read differently, or a way to make the hub hold memory.
#include "hub/net/http_parser.h"

#include <gtest/gtest.h>

namespace rx::hub {
namespace {

HeadParse parse(std::string_view s) { return parse_request_head(s); }

void expect_refused(std::string_view request, int status, const std::string& code) {
  auto p = parse(request);
  ASSERT_EQ(p.state, HeadParse::kError) << request;
  EXPECT_EQ(p.error.status, status) << request << ": " << p.error.message;
  EXPECT_EQ(p.error.code, code) << request;
  EXPECT_FALSE(p.error.message.empty());
}

TEST(HttpParser, ParsesARequestHead) {
  auto p = parse("POST /api/v1/terminals?since=42&name=a%20b+c HTTP/1.1\r\nHost: hub:8080\r\n"
                 "Content-Length: 5\r\nX-Many: a\r\nx-many: b\r\n\r\nhello");
  ASSERT_EQ(p.state, HeadParse::kDone) << p.error.message;
  EXPECT_EQ(p.head.method, "POST");
  EXPECT_EQ(p.head.path, "/api/v1/terminals");
  EXPECT_EQ(p.head.query.at("since"), "42");
  EXPECT_EQ(p.head.query.at("name"), "a b c");
  EXPECT_EQ(p.head.fields.at("host"), "hub:8080");
  EXPECT_EQ(p.head.fields.at("x-many"), "a, b");
  EXPECT_EQ(p.head.body, BodyKind::kLength);
  EXPECT_EQ(p.head.content_length, 5u);
  EXPECT_TRUE(p.head.keep_alive);
  EXPECT_EQ(p.length, std::string_view("POST /api/v1/terminals?since=42&name=a%20b+c HTTP/1.1\r\nHost: hub:8080\r\n"
                                       "Content-Length: 5\r\nX-Many: a\r\nx-many: b\r\n\r\n").size());
}

TEST(HttpParser, IncompleteHeadsWaitButAreCheckedSoFar) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r").state, HeadParse::kIncomplete);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n").state, HeadParse::kIncomplete);
  // A bare LF is refused as soon as it is seen, not after the head is complete.
  expect_refused("GET / HTTP/1.1\nHost: x", 400, "bad_request");
  // So is a head that outgrows the limit while still arriving.
  expect_refused("GET / HTTP/1.1\r\nX: " + std::string(20000, 'a'), 431, "headers_too_large");
}

TEST(HttpParser, SmugglingFramingIsRefused) {
  // RFC 9112 6.3: both framings, two lengths, a length that is not a number.
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented");
  expect_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\n Content-Length: 4\r\n\r\n", 400, "bad_request");
  expect_refused("POST / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400, "bad_request");
  expect_refused("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "bad_request");
  expect_refused("GET / HTTP/1.1\r\n\r\n", 400, "bad_request");  // HTTP/1.1 without Host
  expect_refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "bad_request");
  auto chunked = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n");
  ASSERT_EQ(chunked.state, HeadParse::kDone);
  EXPECT_EQ(chunked.head.body, BodyKind::kChunked);
}

TEST(HttpParser, RequestLineAndTargetRules) {
  expect_refused("CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented");
  expect_refused("TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented");
  expect_refused("PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "not_implemented");
  expect_refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "version_not_supported");
  expect_refused("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET / JUNK/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");  // not UTF-8
  expect_refused("GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");  // a raw byte
  expect_refused("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /a/%2e%2e/b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /?a=1&a=2 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /?a=%00 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
  expect_refused("GET /" + std::string(15000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long");
  expect_refused("GET / HTTP/1.1\r\nHost: x\r\nX: a\x01" "b\r\n\r\n", 400, "bad_request");
  expect_refused("GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", 417, "expectation_failed");
  auto absolute = parse("GET http://hub:8080/api/v1/agents?x=1 HTTP/1.1\r\nHost: hub:8080\r\n\r\n");
  ASSERT_EQ(absolute.state, HeadParse::kDone) << absolute.error.message;
  EXPECT_EQ(absolute.head.path, "/api/v1/agents");
  EXPECT_EQ(absolute.head.query.at("x"), "1");
  auto utf8 = parse("GET /t/%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(utf8.state, HeadParse::kDone);
  EXPECT_EQ(utf8.head.path, "/t/\xC3\xA9");
  // Empty lines before a request are skipped (RFC 9112 2.2).
  EXPECT_EQ(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n").state, HeadParse::kDone);
}

TEST(HttpParser, SizeLimitsAre431) {
  expect_refused("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + std::string(10 * 1024, 'k') + "\r\n\r\n", 431,
                 "headers_too_large");
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 101; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  expect_refused(many + "\r\n", 431, "headers_too_large");
}

TEST(HttpParser, ConnectionSemantics) {
  auto p10 = parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(p10.state, HeadParse::kDone);
  EXPECT_FALSE(p10.head.keep_alive);
  EXPECT_TRUE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").head.keep_alive);
  EXPECT_FALSE(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").head.keep_alive);
  auto up = parse("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n");
  EXPECT_TRUE(up.head.upgrade);
  expect_refused("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n",
                 400, "bad_request");
  EXPECT_TRUE(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n").head.expect_continue);
}

std::string read_all(BodyReader& r, std::string_view in, size_t step) {
  std::string out;
  size_t pos = 0;
  while (pos < in.size() && !r.done() && !r.error()) {
    size_t n = r.feed(in.substr(pos, step), out);
    pos += n;
    if (n == 0) break;
  }
  return out;
}

TEST(HttpParser, BodyByLengthTakesNoMore) {
  BodyReader r(BodyKind::kLength, 5, 100);
  std::string out;
  EXPECT_EQ(r.feed("hel", out), 3u);
  EXPECT_FALSE(r.done());
  EXPECT_EQ(r.feed("loGET / HTTP/1.1", out), 2u);  // the next request is not the body's
  EXPECT_TRUE(r.done());
  EXPECT_EQ(out, "hello");
  BodyReader big(BodyKind::kLength, 101, 100);
  ASSERT_TRUE(big.error());
  EXPECT_EQ(big.error()->status, 413);
}

TEST(HttpParser, ChunkedBodiesInAnySplit) {
  std::string body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
  for (size_t step : {size_t(1), size_t(2), size_t(3), size_t(7), body.size()}) {
    BodyReader r(BodyKind::kChunked, 0, 100);
    EXPECT_EQ(read_all(r, body + "NEXT", step), "hello world") << "step " << step;
    EXPECT_TRUE(r.done()) << "step " << step;
    EXPECT_FALSE(r.error());
  }
  BodyReader over(BodyKind::kChunked, 0, 8);
  read_all(over, "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 100);
  ASSERT_TRUE(over.error());
  EXPECT_EQ(over.error()->status, 413);
  for (std::string bad : {"x\r\n", "5\nhello\r\n", "5\r\nhelloXY", "12345678901234567\r\n", "\r\n"}) {
    BodyReader r(BodyKind::kChunked, 0, 1000);
    read_all(r, bad, 100);
    ASSERT_TRUE(r.error()) << bad;
    EXPECT_EQ(r.error()->status, 400) << bad;
  }
}

TEST(HttpParser, PercentDecode) {
  EXPECT_EQ(percent_decode("a%20b+c", true), "a b c");
  EXPECT_EQ(percent_decode("a%20b+c", false), "a b+c");
  EXPECT_FALSE(percent_decode("%", false));
  EXPECT_FALSE(percent_decode("%4", false));
  EXPECT_FALSE(percent_decode("%4g", false));
  EXPECT_FALSE(percent_decode("%00", false));
  EXPECT_FALSE(percent_decode("%c3", false));  // half a character
  EXPECT_EQ(percent_decode("%c3%a9", false), "\xc3\xa9");
}

}  // namespace
}  // namespace rx::hub
