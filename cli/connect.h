// The session of `rexec connect`, like ssh's: the user's terminal raw (raw_tty.h) around a
// ViewerLink. Keys go to the remote shell, its output to stdout, SIGWINCH becomes a resize.
// Escapes after a newline (or at the start): `~.` detaches, `~?` lists them, `~~` sends one `~`.
// A dropped connection is resumed by itself with ?since= (backoff 0.2 s doubling to 5 s, one
// status line on stderr), and no byte is shown twice: output is tracked by offset and overlap is
// skipped. Without a terminal on stdin it is a plain pipe: no raw mode, no escapes.
#pragma once

#include <string>

#include "cli/config.h"

namespace rx::cli {

struct SessionEnd {
  enum class Kind {
    kExited,    // the shell exited: `status` is its exit code
    kDetached,  // ~. (or the terminal is still running when the session ended on purpose): 0
    kFailed,    // `message` says why; `status` is non-zero
  };
  Kind kind = Kind::kFailed;
  int status = 1;
  std::string message;        // kFailed: one line, without "rexec: "
  long http_status = 0;       // kFailed: the hub's HTTP status when it refused the attach
  bool exit_code_unknown = false;  // kExited: the hub said "exited" but sent no exit code
};

// Runs on a loop of its own until the shell exits, the user detaches, or the attach fails for
// good (a refusal, a deleted or lost terminal, or no connection at all the first time).
// `label` names the terminal in messages.
SessionEnd run_session(const Profile& hub, const std::string& terminal_id, const std::string& label);

}  // namespace rx::cli
