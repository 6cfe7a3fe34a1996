// file_op: the body of a file channel's child (FILE frame, docs/files.md). The agent forks,
// drops to the channel's account and chdirs to its home (process.h, SpawnOptions::run), then
// calls file_op there: every permission is checked by the kernel against that account, not by us.
//
// What the hub reads, in order:
//   fd 2: exactly one JSON status line before any other byte,
//           {"ok":true,...}  or  {"ok":false,"code":"<code>","message":"<text>"}  (then exit 1);
//   fd 1: get: the file's bytes (exactly "size" of them); list: one JSON object per entry and line;
//   fd 0: put: the upload, until EOF;
//   fd 2: get: a second line when the file shrank while read; put: {"ok":true,"size":N} once the
//         file is in place, or a failure line.
// Exit 0 when done. Codes: bad_path, not_found, permission_denied, is_directory, not_directory,
// not_regular_file, exists, not_empty, no_space, io_error (and bad_request for an unknown op).
//
//   get    {"ok":true,"size":N,"mode":M,"mtime":T,"is_dir":false}
//   list   {"ok":true,"size":0,"mode":M,"mtime":T,"is_dir":true}, then sorted by name (bytewise)
//          {"name":S,"size":N,"mode":M,"is_dir":B,"mtime":T} ("size" 0 for a directory); a symbolic
//          link is described by what it points to (as get would see it), a dangling one by the
//          link itself; an entry that cannot be stat'ed (a directory without x) by zeros
//   put    {"ok":true,"ready":true} ... {"ok":true,"size":N}
//   delete {"ok":true}
// mode = permission bits (st_mode & 07777), mtime = seconds since 1970. Names and messages are
// bytes from the file system: JSON-escaped, invalid UTF-8 replaced by U+FFFD.
#pragma once

#include <cstdint>
#include <string>

namespace rx::agent {

struct FileOpOptions {
  // put: an unnamed O_TMPFILE first. Off only in tests, to reach the named-temporary fallback
  // that file systems without O_TMPFILE (overlayfs before Linux 6.6, NFS) get.
  bool use_tmpfile = true;
};

// `op` "get"|"put"|"list"|"delete"; `mode` a put's permission bits (0: 0644); `flags`
// protocol::kFileOverwrite. Returns the exit code (0 done, 1 failed). A put cancelled by SIGHUP,
// SIGTERM or SIGINT (the hub's CLOSE, the agent's death) removes its temporary file and dies of
// that signal instead of returning.
int file_op(const std::string& op, const std::string& path, uint32_t mode, uint32_t flags,
            const FileOpOptions& options = {});

}  // namespace rx::agent
