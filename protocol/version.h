// The release both binaries report (--version, HELLO, WELCOME): the project version of the
// top-level CMakeLists.txt, passed in by the build so it is written in one place.
#pragma once

#ifndef REXEC_VERSION
#error "REXEC_VERSION comes from protocol/CMakeLists.txt"
#endif

namespace rx {
inline constexpr const char* kRexecVersion = REXEC_VERSION;
}  // namespace rx
