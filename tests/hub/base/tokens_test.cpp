// hub/base/tokens.cpp: secrets are long, random, typed by prefix, hashed, compared in constant time.
#include "hub/base/tokens.h"

#include <gtest/gtest.h>

#include <set>

namespace rx::hub {
namespace {

TEST(Tokens, HaveTheirKindsPrefixAnd192RandomBits) {
  for (auto kind : {TokenKind::kApi, TokenKind::kEnrollment, TokenKind::kAgentCredential, TokenKind::kShare,
                    TokenKind::kSession, TokenKind::kRecordingShare}) {
    auto t = new_token(kind);
    EXPECT_EQ(t.substr(0, 4), token_prefix(kind));
    EXPECT_EQ(t.size(), 4u + 32u);  // 32 base64url chars = 192 bits
    EXPECT_TRUE(looks_like(kind, t));
  }
  EXPECT_FALSE(looks_like(TokenKind::kApi, new_token(TokenKind::kShare)));
  EXPECT_FALSE(looks_like(TokenKind::kShare, new_token(TokenKind::kRecordingShare))) << "a recording's link is no terminal's";
  EXPECT_FALSE(looks_like(TokenKind::kApi, "rxk_short"));
  EXPECT_FALSE(looks_like(TokenKind::kApi, "rxk_" + std::string(31, 'a') + "!"));
}

TEST(Tokens, AreUniqueAndUseTheWholeAlphabet) {
  std::set<std::string> seen;
  std::set<char> chars;
  for (int i = 0; i < 10000; ++i) {
    auto t = new_token(TokenKind::kApi);
    EXPECT_TRUE(seen.insert(t).second);
    for (char c : t.substr(4)) chars.insert(c);
  }
  EXPECT_EQ(chars.size(), 64u);  // every base64url symbol shows up: the bits are really random
}

TEST(Tokens, HashIsSha256Hex) {
  // SHA-256("abc"), FIPS 180-2 appendix B.1
  EXPECT_EQ(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto t = new_token(TokenKind::kApi);
  EXPECT_EQ(token_hash(t), token_hash(t));
  EXPECT_NE(token_hash(t), token_hash(new_token(TokenKind::kApi)));
}

TEST(Tokens, HashesEqual) {
  EXPECT_TRUE(hashes_equal("abcd", "abcd"));
  EXPECT_FALSE(hashes_equal("abcd", "abce"));
  EXPECT_FALSE(hashes_equal("abcd", "abc"));
}

TEST(Ids, AreShortUniqueAndPrefixed) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    auto id = new_id("t_");
    EXPECT_EQ(id.size(), 14u);
    EXPECT_EQ(id.substr(0, 2), "t_");
    EXPECT_TRUE(seen.insert(id).second);
  }
}

}  // namespace
}  // namespace rx::hub
