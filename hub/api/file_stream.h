// A file on its way to one HTTP client (agent downloads, recordings): read a chunk whenever the
// client has taken the last ones, so a slow client costs the hub one chunk of memory, not the
// file. Owned by the exchange's callbacks; ends when the range is sent or the client goes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "hub/base/fd.h"
#include "hub/net/server.h"

namespace rx::hub {

// Sends `head` now, then `length` bytes of `fd` from `offset` (nullopt: to the end of the file
// as it is when read: a recording still being written streams what it holds). `name` is for
// the log line if a read fails (the client then sees a cut body, never a complete wrong one).
void stream_file(Fd fd, const std::shared_ptr<HttpExchange>& ex, Response head, std::string name, off_t offset = 0,
                 std::optional<uint64_t> length = std::nullopt);

}  // namespace rx::hub
