#include "hub/base/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>

namespace rx::hub {
namespace {

constexpr std::string_view kBase64Url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kBase32 = "abcdefghijkmnpqrstuvwxyz23456789";  // no l, o, 0, 1: readable ids

template <size_t N>
std::array<uint8_t, N> random_bytes() {
  std::array<uint8_t, N> b{};
  // RAND_bytes only fails when the system has no entropy source: nothing sensible to do then.
  if (RAND_bytes(b.data(), int(N)) != 1) std::abort();
  return b;
}

}  // namespace

std::string_view token_prefix(TokenKind kind) {
  switch (kind) {
    case TokenKind::kApi: return "rxk_";
    case TokenKind::kEnrollment: return "rxe_";
    case TokenKind::kAgentCredential: return "rxa_";
    case TokenKind::kShare: return "rxs_";
    case TokenKind::kSession: return "rxc_";
    case TokenKind::kRecordingShare: return "rxr_";
  }
  return "rx?_";
}

std::string new_token(TokenKind kind) {
  auto bytes = random_bytes<24>();  // 192 bits -> exactly 32 base64url characters, no padding
  std::string out(token_prefix(kind));
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(bytes[i]) << 16) | (uint32_t(bytes[i + 1]) << 8) | bytes[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += kBase64Url[(v >> s) & 63];
  }
  return out;
}

std::string token_hash(std::string_view token) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), md.data(), &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool hashes_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool looks_like(TokenKind kind, std::string_view token) {
  auto prefix = token_prefix(kind);
  if (token.size() != prefix.size() + 32 || token.substr(0, prefix.size()) != prefix) return false;
  for (char c : token.substr(prefix.size()))
    if (kBase64Url.find(c) == std::string_view::npos) return false;
  return true;
}

std::string new_id(std::string_view prefix) {
  auto bytes = random_bytes<12>();
  std::string out(prefix);
  for (uint8_t b : bytes) out += kBase32[b & 31];  // 60 bits: plenty for uniqueness, ids are not secrets
  return out;
}

}  // namespace rx::hub
