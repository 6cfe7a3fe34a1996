# Cross-building the static rexec-agent for arm64 (preset static-agent-arm64) with Debian's
# g++-aarch64-linux-gnu and arm64 multiarch libraries (dpkg --add-architecture arm64; the :arm64
# -dev packages scripts/install-deps.sh installs). No sysroot: Debian's cross compiler already
# searches /usr/include/aarch64-linux-gnu and /usr/lib/aarch64-linux-gnu, and CMake finds the
# static archives there through CMAKE_LIBRARY_ARCHITECTURE. libwebsockets-dev:arm64 cannot be
# installed beside the amd64 one (their lws_config.h differ by one unused path), so
# install-deps.sh puts its libwebsockets.a in /usr/local/lib/aarch64-linux-gnu, which CMake
# searches too; the shared headers in /usr/include serve both.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Programs (none are run at build time) come from the build machine; libraries and headers never do.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
