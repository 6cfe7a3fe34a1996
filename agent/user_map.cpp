#include "agent/user_map.h"

#include <fstream>
#include <sstream>
#include <string_view>

namespace rx::agent {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<UserMap> UserMap::parse(const std::string& text, const std::string& etc, const std::string& where) {
  UserMap m;
  std::istringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    std::string_view l = trim(line);
    if (l.empty() || l[0] == '#') continue;
    std::string at = where + " line " + std::to_string(number) + ": ";
    auto eq = l.find('=');
    if (eq == std::string_view::npos) return make_error("bad_user_map", at + "expected REXEC_USER = LOCAL_ACCOUNT");
    std::string user(trim(l.substr(0, eq))), local(trim(l.substr(eq + 1)));
    if (user.empty() || local.empty())
      return make_error("bad_user_map", at + "expected REXEC_USER = LOCAL_ACCOUNT");
    if (m.entries_.count(user)) return make_error("bad_user_map", at + "\"" + user + "\" is mapped twice");
    auto account = find_account(local, etc);
    if (!account)
      return make_error("bad_user_map", at + "no local account \"" + local + "\" (" + account.error().message + ")");
    m.entries_[user] = std::move(account).value();
  }
  return m;
}

Result<UserMap> UserMap::load(const std::string& path, const std::string& etc) {
  std::ifstream in(path);
  if (!in) return make_error("bad_user_map", "cannot read user map " + path);
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), etc, path);
}

const Account* UserMap::find(const std::string& rexec_user) const {
  auto it = entries_.find(rexec_user);
  return it == entries_.end() ? nullptr : &it->second;
}

std::map<std::string, std::string> UserMap::users_by_account() const {
  std::map<std::string, std::string> out;
  std::map<std::string, int> seen;
  for (const auto& [user, account] : entries_)
    if (++seen[account.name] == 1) out[account.name] = user;
  for (const auto& [name, n] : seen)
    if (n > 1) out.erase(name);
  return out;
}

Result<ChannelAccount> choose_account(const protocol::Open& open, const UserMap& map,
                                      const std::optional<Account>& fallback, const std::string& etc, uid_t self_uid) {
  ChannelAccount chosen;
  if (const Account* a = open.user.empty() ? nullptr : map.find(open.user)) {
    chosen = {*a, false};  // explicit, root included
  } else if (!open.account.empty()) {
    auto a = find_account(open.account, etc);
    if (!a) return make_error("unknown_account", "no local account \"" + open.account + "\" on this machine");
    if (a->uid == 0) return make_error("root_not_allowed", "a mapping to root must be explicit: name it in --user-map");
    chosen = {std::move(a).value(), false};
  } else {
    return ChannelAccount{fallback, true};
  }
  // process.cpp drops privileges only when it can; without root the child would silently run as
  // the agent's own user, which is not what was asked for.
  if (self_uid != 0 && chosen.account->uid != self_uid)
    return make_error("account_not_allowed", "the agent runs as uid " + std::to_string(self_uid) +
                                                 ", not root, so it cannot run a terminal as \"" +
                                                 chosen.account->name + "\"");
  return chosen;
}

}  // namespace rx::agent
