// Image references as Docker's grammar defines them (github.com/distribution/reference:
// [domain/]path[:tag][@digest]), checked before a name goes anywhere near the Docker API, so a
// request cannot smuggle path segments, queries or odd bytes into a Docker call, and a typo gets
// a 400 that says what is wrong instead of Docker's confusion.
#pragma once

#include <string_view>

#include "protocol/error.h"

namespace rx::hub {

// Ok for a well-formed reference ("busybox", "rexec/debian:12", "localhost:5000/a/b:v1",
// "x@sha256:<hex>", an image id "sha256:<hex>"); else bad_field naming `field` and the rule broken.
Status check_image_ref(std::string_view ref, std::string_view field = "image");

}  // namespace rx::hub
