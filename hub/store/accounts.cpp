#include "hub/store/accounts.h"

#include "hub/base/tokens.h"

namespace rx::hub {

Result<std::string> normalize_scopes(const std::vector<std::string>& scopes) {
  bool has[3] = {false, false, false};
  static const char* kNames[3] = {"read", "write", "admin"};
  for (const auto& s : scopes) {
    bool known = false;
    for (int i = 0; i < 3; ++i)
      if (s == kNames[i]) has[i] = known = true;
    if (!known) return make_error("bad_field", "scopes: unknown scope \"" + s + "\" (read, write or admin)");
  }
  std::string out;
  for (int i = 0; i < 3; ++i)
    if (has[i]) {
      if (!out.empty()) out += ' ';
      out += kNames[i];  // appended, not "a" + b: GCC 12 -O3 warns on that (-Wrestrict, bug 105329)
    }
  if (out.empty()) return make_error("bad_field", "scopes: at least one of read, write, admin");
  return out;
}

std::vector<std::string> scope_list(const std::string& scopes) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < scopes.size()) {
    auto end = scopes.find(' ', pos);
    if (end == std::string::npos) end = scopes.size();
    if (end > pos) out.push_back(scopes.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

Result<MintedToken> mint_token(Store& store, const std::string& user_id, const std::string& name,
                               const std::string& scopes, std::optional<int64_t> expires_at) {
  std::string secret = new_token(TokenKind::kApi);
  auto rec = store.create_token(user_id, name, scopes, token_hash(secret), expires_at);
  if (!rec) return rec.error();
  return MintedToken{*rec, secret};
}

Status check_user_name(const std::string& name) {
  auto ok = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!first && (c == '.' || c == '_' || c == '-'));
  };
  if (name.empty() || name.size() > 64) return make_error("bad_field", "name: 1 to 64 characters");
  for (size_t i = 0; i < name.size(); ++i)
    if (!ok(name[i], i == 0))
      return make_error("bad_field", "name: only a-z, 0-9, '.', '_' and '-', starting with a letter or digit");
  return Ok{};
}

Result<NewUser> add_user(Store& store, const std::string& name, bool admin) {
  if (auto s = check_user_name(name); !s) return s.error();
  auto user = store.create_user(name, admin);
  if (!user) return user.error();
  auto token = mint_token(store, user->id, "first token", admin ? "read write admin" : "read write", std::nullopt);
  if (!token) return token.error();
  return NewUser{*user, *token};
}

}  // namespace rx::hub
