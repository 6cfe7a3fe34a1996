// protocol/codec.cpp: every frame type round-trips; every malformed input gets its own clear error.
#include "protocol/codec.h"

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <random>

#include "protocol/limits.h"

namespace rx::protocol {
namespace {

// The bytes of a frame within the limits (every frame here is).
std::vector<uint8_t> encoded(const Frame& f, size_t headroom = 0) {
  auto r = encode(f, headroom);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r ? *r : std::vector<uint8_t>{};
}

// Raw msgpack written by hand (through msgpack-c's packer), for frames our encoder would never make.
struct Raw {
  std::vector<uint8_t> bytes;
  struct Sink {
    std::vector<uint8_t>& out;
    void write(const char* p, size_t n) { out.insert(out.end(), p, p + n); }
  } sink{bytes};
  msgpack::packer<Sink> pk{sink};
  Raw& array(uint32_t n) { pk.pack_array(n); return *this; }
  Raw& map(uint32_t n) { pk.pack_map(n); return *this; }
  Raw& u(uint64_t v) { pk.pack_uint64(v); return *this; }
  Raw& i(int64_t v) { pk.pack_int64(v); return *this; }
  Raw& str(std::string_view s) { pk.pack_str(uint32_t(s.size())); pk.pack_str_body(s.data(), uint32_t(s.size())); return *this; }
  Raw& bin(size_t n, uint8_t fill = 'x') {
    std::string b(n, char(fill));
    pk.pack_bin(uint32_t(n)); pk.pack_bin_body(b.data(), uint32_t(n));
    return *this;
  }
  Raw& nil() { pk.pack_nil(); return *this; }
  Raw& f64(double d) { pk.pack_double(d); return *this; }
};

Error decode_error(std::span<const uint8_t> bytes) {
  auto r = decode(bytes);
  EXPECT_FALSE(r.ok()) << "expected an error, decoded type " << (r.ok() ? frame_type(*r) : 0);
  return r.ok() ? Error{} : r.error();
}

std::vector<Frame> one_of_each() {
  HostInfo host{"box", "Debian GNU/Linux 12 (bookworm)", "6.1.0", "x86_64", 8, 1ull << 34,
                {{0, "GPU-1", "NVIDIA A100", 80ull << 30}, {1, "GPU-2", "NVIDIA A100", 80ull << 30}}};
  std::vector<uint8_t> all_bytes(256);
  for (int i = 0; i < 256; ++i) all_bytes[size_t(i)] = uint8_t(i);
  return {
      Hello{0, 1, 2, "0.1.0", {"pty", "exec"}, host, {{1, 10}, {UINT32_MAX, UINT64_MAX}}, {}},
      Hello{0, 1, 1, "0.1.0", {"pty"}, host, {}, {{"rack", "b7"}, {"gpu", ""}, {"team/ml", "ünïcode"}}},
      Welcome{0, 1, "0.1.0", "ag_1", std::string("rxa_secret"), {{1, Stream::kOutput, 5}, {2, Stream::kStderr, 0}}},
      Welcome{0, 1, "0.1.0", "ag_1", std::nullopt, {}},
      Open{7, ChannelKind::kPty, {}, {{"A", "1"}, {"B", ""}}, 80, 24, kDefaultWindow},
      Open{8, ChannelKind::kExec, {"/bin/echo", "hi"}, {}, 65535, 65535, kMaxWindow},
      Open{9, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow, "alice", "alice"},
      Open{10, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow, "", "bob"},
      Open{11, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow, "carol", ""},
      Opened{7, 4242},
      Data{7, Stream::kOutput, 0, all_bytes},
      Data{7, Stream::kInput, UINT64_MAX - 256, all_bytes},
      Data{7, Stream::kStderr, 1, std::vector<uint8_t>(kMaxChunk, 0xab)},
      Ack{7, Stream::kOutput, 1ull << 40},
      Resize{7, 1, 65535},
      Signal{7, "INT"},
      Exit{7, 3, ""},
      Exit{7, INT32_MIN, ""},
      Exit{7, 137, "KILL"},
      Close{7, "bye"},
      Stats{0, 1000, 1, 2, {{0, 100, 3, 4}}},
      Stats{0, 5, 1, 2, {{0, 1, 3, 4, {{42, "python3", 1 << 20, "alice", "alice", 7}, {UINT32_MAX, "", 0, "#1001", "", 0}}},
                         {1, 0, 0, 4}}},
      ErrorFrame{7, "unknown_channel", "channel 7 is not open"},
      FileOpen{12, "get", "notes.txt", kDefaultWindow, 0, 0, "alice", ""},
      FileOpen{UINT32_MAX, "put", std::string(kMaxFilePath, 'p'), kMaxWindow, 07777, kFileOverwrite | 0x80000000u, "", "ml"},
      FileOpen{13, "list", "/", kMinWindow, 0, 0},
      FileOpen{14, "delete", "été/ünïcode", kDefaultWindow, 0, 0},
  };
}

TEST(Codec, EveryFrameTypeRoundTrips) {
  std::set<uint32_t> types;
  for (const auto& frame : one_of_each()) {
    auto bytes = encoded(frame);
    ASSERT_LE(bytes.size(), kMaxFrameBytes);
    auto back = decode(bytes);
    ASSERT_TRUE(back.ok()) << frame_type_name(frame_type(frame)) << ": " << back.error().message;
    EXPECT_EQ(*back, frame) << frame_type_name(frame_type(frame));
    EXPECT_EQ(encoded(*back), bytes);
    types.insert(frame_type(frame));
  }
  EXPECT_EQ(types.size(), 13u) << "a frame type has no round-trip case";
}

TEST(Codec, DataHasTheExactBytesOfTheSpec) {
  // [5, 1, 1, 0, bin "hi"]: fixarray(5), fixints, bin8.
  auto bytes = encoded(Data{1, Stream::kOutput, 0, {'h', 'i'}});
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0x95, 0x05, 0x01, 0x01, 0x00, 0xc4, 0x02, 'h', 'i'}));
}

TEST(Codec, EncodeDataMatchesEncodeAndKeepsHeadroom) {
  std::vector<uint8_t> payload(5000, 'z');
  auto a = encoded(Data{3, Stream::kOutput, 123456789, payload}, 16);
  auto b = encode_data(3, Stream::kOutput, 123456789, payload, 16);
  EXPECT_EQ(a, b);
  ASSERT_GT(a.size(), 16u);
  for (size_t i = 0; i < 16; ++i) EXPECT_EQ(a[i], 0);
  auto back = decode(std::span(a).subspan(16));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<Data>(*back).bytes, payload);
}

TEST(Codec, PeekDataAgreesWithDecodeWithoutCopying) {
  std::mt19937_64 rng(5);
  for (size_t len : {size_t(0), size_t(1), size_t(255), size_t(256), size_t(65535), size_t(65536)}) {
    for (uint64_t offset : {uint64_t(0), uint64_t(127), uint64_t(128), uint64_t(1) << 40, UINT64_MAX - 65536}) {
      std::vector<uint8_t> payload(len);
      for (auto& b : payload) b = uint8_t(rng());
      auto bytes = encoded(Data{70000, Stream::kStderr, offset, payload});
      auto view = peek_data(bytes);
      ASSERT_TRUE(view) << "len " << len << " offset " << offset;
      EXPECT_EQ(view->channel, 70000u);
      EXPECT_EQ(view->stream, Stream::kStderr);
      EXPECT_EQ(view->offset, offset);
      EXPECT_TRUE(std::equal(view->bytes.begin(), view->bytes.end(), payload.begin(), payload.end()));
      EXPECT_GE(view->bytes.data(), bytes.data());  // a view into the message, not a copy
      EXPECT_LE(view->bytes.data() + view->bytes.size(), bytes.data() + bytes.size());
    }
  }
  // Declines what is not a canonical DATA frame; decode() decides those.
  EXPECT_FALSE(peek_data(encoded(Ack{1, Stream::kOutput, 5})));
  EXPECT_FALSE(peek_data(Raw().array(6).u(5).u(1).u(1).u(0).bin(3).nil().bytes));   // extra field
  EXPECT_FALSE(peek_data(Raw().array(5).u(5).u(1).u(3).u(0).bin(3).bytes));         // stream 3
  std::vector<uint8_t> wide{0x95, 0x05, 0xcc, 0x01, 0x01, 0x00, 0xc4, 0x00};         // channel 1 as uint8: not canonical
  EXPECT_FALSE(peek_data(wide));
  EXPECT_TRUE(decode(wide).ok());  // ... but valid msgpack, so decode() accepts it
  auto truncated = encoded(Data{1, Stream::kOutput, 0, {1, 2, 3}});
  truncated.pop_back();
  EXPECT_FALSE(peek_data(truncated));
}

TEST(Codec, UnknownTypeDecodesToUnknownAndIsIgnorable) {
  auto raw = Raw().array(4).u(99).u(3).str("from the future").u(1).bytes;
  auto r = decode(raw);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(std::holds_alternative<Unknown>(*r));
  EXPECT_EQ(std::get<Unknown>(*r), (Unknown{99, 3}));
  EXPECT_EQ(frame_type_name(99), "UNKNOWN");
}

TEST(Codec, ExtraTrailingFieldsAreIgnored) {
  auto raw = Raw().array(6).u(6).u(1).u(1).u(10).str("appended later").nil().bytes;
  auto r = decode(raw);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::get<Ack>(*r), (Ack{1, Stream::kOutput, 10}));
}

// Labels were appended to HELLO: a HELLO without them is what older agents send, unchanged.
TEST(Codec, HelloWithoutLabelsIsTheOldSixFieldFrame) {
  Hello h{0, 1, 1, "0.1.0", {"pty"}, {}, {}, {}};
  auto bytes = encode(h);
  ASSERT_TRUE(bytes.ok());
  auto o = msgpack::unpack(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  EXPECT_EQ(o.get().via.array.size, 8u);
  h.labels = {{"k", "v"}};
  bytes = encode(h);
  ASSERT_TRUE(bytes.ok());
  o = msgpack::unpack(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  EXPECT_EQ(o.get().via.array.size, 9u);
  auto back = decode(*bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(std::get<Hello>(*back).labels, (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST(CodecMalformed, HelloLabelsMustBeAMapOfStrings) {
  auto raw = Raw().array(9).u(1).u(0).u(1).u(1).str("v").array(0).map(0).array(0).map(1).str("k").u(5).bytes;
  EXPECT_EQ(decode_error(raw).code, "bad_type");
}

TEST(Codec, UnknownMapKeysAreIgnored) {
  auto raw = Raw().array(3).u(11).u(0).map(2).str("cpu").u(5).str("future_key").str("x").bytes;
  auto r = decode(raw);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::get<Stats>(*r).cpu_permille, 5u);
}

// ---- malformed input: one test each ------------------------------------------------------------

// FILE (SPEC.md 1.10): every field's refusal names the field.
TEST(CodecMalformed, FileFramesAreChecked) {
  auto file = [](std::string_view op, std::string_view path, uint64_t window, uint64_t mode) {
    return Raw().array(9).u(13).u(5).str(op).str(path).u(window).u(mode).u(0).str("").str("").bytes;
  };
  auto e = decode_error(file("chmod", "a", kDefaultWindow, 0));
  EXPECT_EQ(e.code, "bad_value");
  EXPECT_NE(e.message.find("FILE.op"), std::string::npos) << e.message;
  e = decode_error(file("get", "", kDefaultWindow, 0));
  EXPECT_EQ(e.code, "bad_value");
  EXPECT_NE(e.message.find("FILE.path: empty"), std::string::npos) << e.message;
  e = decode_error(file("get", std::string_view("a\0b", 3), kDefaultWindow, 0));
  EXPECT_EQ(e.code, "bad_value");
  EXPECT_NE(e.message.find("NUL"), std::string::npos) << e.message;
  e = decode_error(file("get", std::string(kMaxFilePath + 1, 'a'), kDefaultWindow, 0));
  EXPECT_EQ(e.code, "bad_value");
  EXPECT_NE(e.message.find("over the limit of 4096"), std::string::npos) << e.message;
  e = decode_error(file("get", "a", kMinWindow - 1, 0));
  EXPECT_EQ(e.code, "out_of_range");
  EXPECT_NE(e.message.find("FILE.window"), std::string::npos) << e.message;
  e = decode_error(file("put", "a", kDefaultWindow, 010000));
  EXPECT_EQ(e.code, "out_of_range");
  EXPECT_NE(e.message.find("FILE.mode"), std::string::npos) << e.message;
  e = decode_error(Raw().array(8).u(13).u(5).str("get").str("a").u(kDefaultWindow).u(0).u(0).str("").bytes);
  EXPECT_EQ(e.code, "missing_field");
  EXPECT_NE(e.message.find("account"), std::string::npos) << e.message;
  // And the encoder refuses what the decoder would: an over-long path never leaves.
  auto refused = encode(FileOpen{5, "get", std::string(kMaxFilePath + 1, 'a'), kDefaultWindow, 0, 0});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "too_large");
  EXPECT_NE(refused.error().message.find("FILE.path"), std::string::npos) << refused.error().message;
}

TEST(CodecMalformed, EmptyMessage) { EXPECT_EQ(decode_error({}).code, "empty_frame"); }

TEST(CodecMalformed, TruncatedFrame) {
  auto bytes = encoded(Data{1, Stream::kOutput, 0, std::vector<uint8_t>(100, 'a')});
  for (size_t cut : {size_t(1), size_t(4), bytes.size() - 1}) {
    auto e = decode_error(std::span(bytes).first(cut));
    EXPECT_EQ(e.code, "truncated") << "cut at " << cut << ": " << e.message;
  }
}

TEST(CodecMalformed, WrongElementTypes) {
  auto e = decode_error(Raw().array(5).u(5).u(1).u(1).str("zero").bin(1).bytes);
  EXPECT_EQ(e.code, "bad_type");
  EXPECT_EQ(e.message, "DATA.offset: expected unsigned integer, got string");
  // PTY bytes as str instead of bin are refused, not reinterpreted.
  e = decode_error(Raw().array(5).u(5).u(1).u(1).u(0).str("hi").bytes);
  EXPECT_EQ(e.code, "bad_type");
  EXPECT_EQ(e.message, "DATA.bytes: expected bin, got string");
  e = decode_error(Raw().array(4).u(7).u(1).f64(80.5).u(24).bytes);
  EXPECT_EQ(e.message, "RESIZE.cols: expected unsigned integer, got float");
  e = decode_error(Raw().array(2).str("DATA").u(1).bytes);
  EXPECT_EQ(e.message, "frame.type: expected unsigned integer, got string");
}

TEST(CodecMalformed, OversizedBin) {
  auto e = decode_error(Raw().array(5).u(5).u(1).u(1).u(0).bin(kMaxChunk + 1).bytes);
  EXPECT_EQ(e.code, "too_large");
  EXPECT_NE(e.message.find("65536"), std::string::npos) << e.message;
}

TEST(CodecMalformed, FrameOverTheCapIsRefusedBeforeDecoding) {
  // Not even valid msgpack: the cap must be checked before any parsing happens.
  std::vector<uint8_t> bytes(kMaxFrameBytes + 1, 0xc1);
  EXPECT_EQ(decode_error(bytes).code, "frame_too_large");
}

TEST(CodecMalformed, IntegerOverflow) {
  // channel beyond u32
  auto e = decode_error(Raw().array(3).u(4).u(1ull << 32).u(1).bytes);
  EXPECT_EQ(e.code, "out_of_range");
  EXPECT_EQ(e.message, "frame.channel: 4294967296 is over the maximum 4294967295");
  // cols beyond u16
  e = decode_error(Raw().array(4).u(7).u(1).u(70000).u(24).bytes);
  EXPECT_EQ(e.code, "out_of_range");
  // negative offset
  e = decode_error(Raw().array(4).u(6).u(1).u(1).i(-5).bytes);
  EXPECT_EQ(e.code, "out_of_range");
  EXPECT_EQ(e.message, "ACK.offset: -5 is negative; must be 0..18446744073709551615");
  // offset + length past 2^64
  e = decode_error(Raw().array(5).u(5).u(1).u(1).u(UINT64_MAX - 1).bin(2).bytes);
  EXPECT_EQ(e.code, "out_of_range");
  // exit code beyond i32
  e = decode_error(Raw().array(4).u(9).u(1).u(1ull << 31).str("").bytes);
  EXPECT_EQ(e.code, "out_of_range");
}

TEST(CodecMalformed, DeepNesting) {
  Raw r;
  r.array(3).u(11).u(0);
  for (int i = 0; i < 100; ++i) r.array(1);
  r.u(1);
  EXPECT_EQ(decode_error(r.bytes).code, "too_deep");
}

TEST(CodecMalformed, EmptyArray) {
  auto e = decode_error(Raw().array(0).bytes);
  EXPECT_EQ(e.code, "missing_field");
  EXPECT_EQ(e.message, "frame must be an array of at least [type, channel], got 0 elements");
}

TEST(CodecMalformed, TrailingGarbage) {
  auto bytes = encoded(Ack{1, Stream::kOutput, 5});
  bytes.push_back(0x00);
  bytes.push_back(0xff);
  auto e = decode_error(bytes);
  EXPECT_EQ(e.code, "trailing_bytes");
  EXPECT_EQ(e.message, "2 bytes follow the frame");
}

TEST(CodecMalformed, MissingFieldNamesTheField) {
  auto e = decode_error(Raw().array(4).u(5).u(1).u(1).u(0).bytes);
  EXPECT_EQ(e.code, "missing_field");
  EXPECT_EQ(e.message, "DATA: expected 5 elements, got 4 (missing bytes)");
}

TEST(CodecMalformed, NotMsgpack) {
  std::vector<uint8_t> bytes{0xc1};  // the one byte msgpack never uses
  EXPECT_EQ(decode_error(bytes).code, "not_msgpack");
}

TEST(CodecMalformed, NotAnArray) {
  auto e = decode_error(Raw().map(0).bytes);
  EXPECT_EQ(e.code, "not_an_array");
  EXPECT_EQ(e.message, "frame must be a msgpack array, got map");
}

TEST(CodecMalformed, BadValues) {
  EXPECT_EQ(decode_error(Raw().array(4).u(7).u(1).u(0).u(24).bytes).message, "RESIZE.cols: must be at least 1");
  Hello hello;
  hello.channel = 3;
  hello.proto_min = hello.proto_max = 1;
  EXPECT_EQ(decode_error(encoded(hello)).message, "HELLO.channel: must be 0 (the link itself), got 3");
  hello.channel = 0;
  hello.proto_min = 2;
  EXPECT_EQ(decode_error(encoded(hello)).code, "bad_value");
  EXPECT_EQ(decode_error(encoded(Signal{1, "int; rm -rf /"})).code, "bad_value");
  EXPECT_EQ(decode_error(encoded(Open{1, ChannelKind::kExec, {}, {}, 80, 24, kDefaultWindow})).code, "bad_value");
  EXPECT_EQ(decode_error(encoded(Open{1, ChannelKind::kPty, {}, {}, 80, 24, 1})).code, "out_of_range");
  auto kind = Raw().array(8).u(3).u(1).str("telnet").array(0).map(0).u(80).u(24).u(kDefaultWindow).bytes;
  EXPECT_EQ(decode_error(kind).message, "OPEN.kind: \"telnet\" is not \"pty\" or \"exec\"");
  EXPECT_EQ(decode_error(Raw().array(4).u(6).u(1).u(3).u(0).bytes).code, "out_of_range");  // stream 3
}

// GPU sharing appends fields (frame.h); a frame that does not use them must be the old bytes, and
// both the old and the new shapes must decode.
TEST(CodecGpuSharing, OpenWithoutUserOrAccountIsTheSixFieldFrame) {
  auto old_shape = Raw().array(8).u(3).u(1).str("pty").array(0).map(0).u(80).u(24).u(kDefaultWindow).bytes;
  EXPECT_EQ(encoded(Open{1, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow}), old_shape);
  auto back = decode(old_shape);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(std::get<Open>(*back).user, "");
  EXPECT_EQ(std::get<Open>(*back).account, "");
}

TEST(CodecGpuSharing, OpenCarriesUserAndAccountAppended) {
  auto bytes = encoded(Open{1, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow, "alice", "al"});
  EXPECT_EQ(bytes, Raw().array(10).u(3).u(1).str("pty").array(0).map(0).u(80).u(24).u(kDefaultWindow).str("alice").str("al").bytes);
  // A user without an account (9 elements, from a hub that sends only the user) decodes too.
  auto user_only = Raw().array(9).u(3).u(1).str("pty").array(0).map(0).u(80).u(24).u(kDefaultWindow).str("bo").bytes;
  auto back = decode(user_only);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(std::get<Open>(*back).user, "bo");
  EXPECT_EQ(std::get<Open>(*back).account, "");
  auto bad = Raw().array(10).u(3).u(1).str("pty").array(0).map(0).u(80).u(24).u(kDefaultWindow).str("a").u(0).bytes;
  EXPECT_EQ(decode_error(bad).message, "OPEN.account: expected string, got unsigned integer");
}

TEST(CodecGpuSharing, HostGpuPolicyIsSentOnlyWhenNotOpen) {
  Hello h;
  h.proto_min = h.proto_max = 1;
  auto open_bytes = encoded(h);
  h.host.gpu_policy = "lease-required";
  auto lease_bytes = encoded(h);
  EXPECT_GT(lease_bytes.size(), open_bytes.size());
  auto back = decode(lease_bytes);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(std::get<Hello>(*back).host.gpu_policy, "lease-required");
  back = decode(open_bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<Hello>(*back).host.gpu_policy, "open");  // absent means open
}

TEST(CodecGpuSharing, StatsWithoutProcessesIsTheOldFrame) {
  auto old_shape = Raw().array(3).u(11).u(0).map(4).str("cpu").u(1).str("mem_used").u(2).str("mem_total").u(3)
                       .str("gpus").array(1).map(4).str("index").u(0).str("util").u(5).str("mem_used").u(6)
                       .str("mem_total").u(7).bytes;
  EXPECT_EQ(encoded(Stats{0, 1, 2, 3, {{0, 5, 6, 7}}}), old_shape);
}

TEST(CodecGpuSharing, ProcessMapsIgnoreUnknownKeysAndCheckTypes) {
  auto with = [](auto&& proc) {
    Raw r;
    r.array(3).u(11).u(0).map(1).str("gpus").array(1).map(2).str("index").u(0).str("procs").array(1);
    proc(r);
    return r.bytes;
  };
  auto back = decode(with([](Raw& r) { r.map(3).str("pid").u(9).str("cgroup").str("x").str("account").str("a"); }));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& procs = std::get<Stats>(*back).gpus.at(0).processes;
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0], (GpuProcess{9, "", 0, "a", "", 0}));
  EXPECT_EQ(decode_error(with([](Raw& r) { r.map(1).str("pid").str("9"); })).message,
            "STATS.stats.gpus[0].procs[0].pid: expected unsigned integer, got string");
}

TEST(CodecGpuSharing, EncoderChecksTheNewStrings) {
  auto e = encode(Open{1, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow, std::string(kMaxString + 1, 'u'), ""});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("OPEN.user"), std::string::npos) << e.error().message;
  Stats s{0, 1, 2, 3, {{0, 5, 6, 7, {{1, std::string(kMaxString + 1, 'n'), 0, "", "", 0}}}}};
  e = encode(s);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("STATS.stats.gpus.procs.name"), std::string::npos) << e.error().message;
  s.gpus[0].processes.assign(kMaxElements + 1, GpuProcess{});
  e = encode(s);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("STATS.stats.gpus.procs"), std::string::npos) << e.error().message;
}

TEST(CodecMalformed, ExtValuesAreRefused) {
  std::vector<uint8_t> bytes{0x93, 0x06, 0x01, 0xd4, 0x01, 0x00};  // [6, 1, fixext1]
  EXPECT_EQ(decode_error(bytes).code, "bad_type");
}

TEST(CodecMalformed, HugeDeclaredSizesDoNotAllocate) {
  // array32 / map32 headers claiming 4 billion elements: refused at the header, before msgpack-c
  // allocates their element table.
  for (std::vector<uint8_t> bytes : {std::vector<uint8_t>{0xdd, 0xff, 0xff, 0xff, 0xff},
                                     std::vector<uint8_t>{0x92, 0x05, 0xdf, 0xff, 0xff, 0xff, 0xff}}) {
    EXPECT_EQ(decode_error(bytes).code, "too_large");
  }
  // bin32 / str32 claiming 4 GiB in a 10-byte message: the body is missing, so the frame is
  // truncated; nothing is allocated for it since str/bin are referenced in place.
  for (std::vector<uint8_t> bytes : {std::vector<uint8_t>{0x95, 0x05, 0x01, 0x01, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff},
                                     std::vector<uint8_t>{0x93, 0x0a, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}}) {
    EXPECT_EQ(decode_error(bytes).code, "truncated");
  }
}

TEST(CodecMalformed, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20261125);
  size_t errors = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bytes(rng() % 64);
    for (auto& b : bytes) b = uint8_t(rng());
    if (!bytes.empty() && rng() % 2) bytes[0] = uint8_t(0x90 | (rng() % 9));  // often an array
    auto r = decode(bytes);
    if (!r.ok()) {
      ++errors;
      EXPECT_FALSE(r.error().code.empty());
      EXPECT_FALSE(r.error().message.empty());
    }
  }
  EXPECT_GT(errors, 10000u);
}

TEST(CodecMalformed, MutatedValidFramesDecodeOrFailCleanly) {
  std::mt19937_64 rng(7);
  size_t accepted = 0, refused = 0;
  for (const auto& frame : one_of_each()) {
    auto good = encoded(frame);
    for (int i = 0; i < 300; ++i) {
      auto bytes = good;
      bytes[rng() % bytes.size()] = uint8_t(rng());
      auto r = decode(bytes);
      if (r.ok()) {
        // Anything accepted re-encodes validly, and to a fixed point.
        ++accepted;
        auto again = decode(encoded(*r));
        ASSERT_TRUE(again.ok()) << again.error().message;
        EXPECT_EQ(encoded(*again), encoded(*r));
      } else {
        ++refused;
        EXPECT_FALSE(r.error().code.empty());
        EXPECT_FALSE(r.error().message.empty());
      }
    }
  }
  // Both branches ran: a decoder that accepted or refused everything would fail here.
  EXPECT_GT(accepted, 100u);
  EXPECT_GT(refused, 100u);
}

TEST(CodecEncode, RefusesWhatTheDecoderWouldRefuse) {
  // Every size limit of the decoder holds for the encoder too: a frame the peer would refuse (and
  // drop the link over) is never produced. The error names the field.
  auto refused = [](const Frame& f) {
    auto r = encode(f);
    EXPECT_FALSE(r.ok()) << frame_type_name(frame_type(f));
    return r ? Error{} : r.error();
  };
  auto e = refused(Open{1, ChannelKind::kPty, {}, {{"BIG", std::string(kMaxString + 1, 'v')}}, 80, 24, kDefaultWindow});
  EXPECT_EQ(e.code, "too_large");
  EXPECT_NE(e.message.find("OPEN.env.BIG"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find(std::to_string(kMaxString)), std::string::npos) << e.message;
  Open many{1, ChannelKind::kPty, {}, {}, 80, 24, kDefaultWindow};
  for (size_t i = 0; i <= kMaxElements; ++i) many.env["K" + std::to_string(i)] = "v";
  EXPECT_NE(refused(many).message.find("OPEN.env"), std::string::npos);
  e = refused(Open{1, ChannelKind::kExec, {"echo", std::string(kMaxString + 1, 'a')}, {}, 80, 24, kDefaultWindow});
  EXPECT_NE(e.message.find("OPEN.argv[1]"), std::string::npos) << e.message;
  // Each string within its limit, the whole over the frame's.
  Open wide{1, ChannelKind::kExec, {}, {}, 80, 24, kDefaultWindow};
  for (int i = 0; i < 8; ++i) wide.argv.push_back(std::string(kMaxString - 10, 'a'));
  EXPECT_EQ(refused(wide).code, "frame_too_large");
  EXPECT_EQ(refused(Data{1, Stream::kOutput, 0, std::vector<uint8_t>(kMaxChunk + 1)}).code, "too_large");
  EXPECT_EQ(refused(ErrorFrame{1, "x", std::string(kMaxString + 1, 'm')}).code, "too_large");
  Hello h;
  h.host.hostname = std::string(kMaxString + 1, 'h');
  EXPECT_NE(refused(h).message.find("HELLO.host.hostname"), std::string::npos);
  // At the limits, everything goes and decodes.
  Open full{1, ChannelKind::kPty, {}, {{"OK", std::string(kMaxString, 'v')}}, 80, 24, kDefaultWindow};
  auto bytes = encode(full);
  ASSERT_TRUE(bytes.ok()) << bytes.error().message;
  EXPECT_TRUE(decode(*bytes).ok());
  EXPECT_TRUE(check_limits(full).ok());
  EXPECT_FALSE(check_limits(many).ok());
}

}  // namespace
}  // namespace rx::protocol
