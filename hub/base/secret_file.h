// Secrets on disk: a new file readable only by its owner (0600, O_EXCL, no symlink followed),
// fsynced. Used for the admin token and for container terminals' credentials.
#pragma once

#include <string>

#include "protocol/error.h"

namespace rx::hub {

Status write_secret_file(const std::string& path, const std::string& secret);

}  // namespace rx::hub
