// Accounts: users and their API tokens, shared by the API (POST /api/v1/users, /tokens) and the
// offline commands (`rexec-hub user add`, `token create`). A secret is returned once, here;
// only its hash reaches the store.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hub/store/store.h"

namespace rx::hub {

struct MintedToken {
  TokenRecord record;
  std::string secret;  // shown once
};

// Scopes as words in a fixed order ("read write admin"); errors name the bad scope.
Result<std::string> normalize_scopes(const std::vector<std::string>& scopes);
std::vector<std::string> scope_list(const std::string& scopes);

Result<MintedToken> mint_token(Store& store, const std::string& user_id, const std::string& name,
                               const std::string& scopes, std::optional<int64_t> expires_at);

// Names: 1-64 of [a-z0-9._-], starting with a letter or digit (they appear in URLs and logs).
Status check_user_name(const std::string& name);

struct NewUser {
  User user;
  MintedToken token;
};
// A user and its first token (read write, plus admin for an admin). Errors: bad_field, conflict.
Result<NewUser> add_user(Store& store, const std::string& name, bool admin);

}  // namespace rx::hub
