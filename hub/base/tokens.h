// Secrets the hub hands out: API tokens, agent enrollment tokens, agent credentials, share codes.
// Each is 192 random bits (OpenSSL RAND_bytes), base64url, behind a prefix that says its kind, so
// a leaked string is recognisable (and greppable by secret scanners). The hub stores only the
// SHA-256 of a secret and compares hashes in constant time; the secret itself is shown once.
#pragma once

#include <string>
#include <string_view>

#include "protocol/error.h"

namespace rx::hub {

enum class TokenKind { kApi, kEnrollment, kAgentCredential, kShare, kSession, kRecordingShare };

// "rxk_", "rxe_", "rxa_", "rxs_", "rxc_", "rxr_"
std::string_view token_prefix(TokenKind kind);

// A new secret of that kind: prefix + 32 base64url characters (192 bits).
std::string new_token(TokenKind kind);

// Lower-case hex SHA-256 of the whole token (prefix included): what the store keeps.
std::string token_hash(std::string_view token);

// Constant-time comparison of two equal-length hashes (length mismatch returns false at once:
// lengths are not secret).
bool hashes_equal(std::string_view a, std::string_view b);

// True when `token` has the shape of a token of `kind`: cheap check before any store lookup.
bool looks_like(TokenKind kind, std::string_view token);

// A short random id for resources ("t_" + 12 base32 chars): not secret, only unique.
std::string new_id(std::string_view prefix);

}  // namespace rx::hub
