// UserMap: which local account runs a channel for which Rexec user (`--user-map FILE`), and the
// choice of account for one OPEN. The file is `REXEC_USER = LOCAL_ACCOUNT` lines (`#` comments,
// blank lines); every account must exist when the agent starts, so a typo stops the agent
// instead of failing terminals one by one later. Root is reachable only through this file: an
// account of uid 0 asked for by the hub (OPEN.account, from a grant) is refused, so a compromised
// or careless hub cannot turn a grant into a root shell.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>

#include "agent/process.h"
#include "protocol/error.h"
#include "protocol/frame.h"

namespace rx::agent {

class UserMap {
 public:
  // `where` names the source in errors ("FILE line N: ..."). Accounts are looked up in <etc>/passwd.
  // Errors: bad_user_map.
  static Result<UserMap> parse(const std::string& text, const std::string& etc, const std::string& where);
  static Result<UserMap> load(const std::string& path, const std::string& etc);

  const Account* find(const std::string& rexec_user) const;
  // Local account name -> the Rexec user mapped to it; an account two users map to is left out
  // (who of them runs a process cannot be told).
  std::map<std::string, std::string> users_by_account() const;
  bool empty() const { return entries_.empty(); }

 private:
  std::map<std::string, Account> entries_;
};

// How a channel's account was chosen: its own login shell applies unless it is the agent's default
// account (then --shell, if given, does).
struct ChannelAccount {
  std::optional<Account> account;  // nullopt: the agent's own account (no --user)
  bool is_default = true;
};

// The account for `open`: the map entry for open.user wins; else open.account if non-empty; else
// `fallback` (--user). `self_uid` is the agent's uid: running as another account needs root.
// Errors: root_not_allowed, unknown_account, account_not_allowed.
Result<ChannelAccount> choose_account(const protocol::Open& open, const UserMap& map,
                                      const std::optional<Account>& fallback, const std::string& etc, uid_t self_uid);

}  // namespace rx::agent
