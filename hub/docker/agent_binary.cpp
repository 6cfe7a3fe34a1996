#include "hub/docker/agent_binary.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "hub/base/fd.h"

namespace rx::hub {
namespace {

Error missing(const std::string& path, const std::string& why) {
  return make_error("agent_binary_missing", "container terminals need a static rexec-agent at " + path + ": " + why +
                                                " (build it with `cmake --preset static-agent` or set --agent-binary)");
}

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
#else
constexpr uint16_t kMachine = EM_NONE;  // unknown CPU: only the class and type are checked
#endif

}  // namespace

std::string default_agent_binary() {
  std::vector<std::string> candidates;
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((exe.parent_path().parent_path() / "lib/rexec/rexec-agent").lexically_normal().string());
  for (const char* p : {"/usr/lib/rexec/rexec-agent", "/usr/local/lib/rexec/rexec-agent"})
    if (std::find(candidates.begin(), candidates.end(), p) == candidates.end()) candidates.push_back(p);
  for (const auto& c : candidates)
    if (::access(c.c_str(), F_OK) == 0) return c;
  return candidates.front();
}

Status check_agent_binary(const std::string& path) {
  Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return missing(path, std::strerror(errno));
  int fd = file.get();
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return missing(path, "not a regular file");
  if (!(st.st_mode & S_IXOTH) && !(st.st_mode & S_IXUSR)) return missing(path, "not executable");
  Elf64_Ehdr eh{};
  if (::pread(fd, &eh, sizeof eh, 0) != ssize_t(sizeof eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return missing(path, "not an ELF executable");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
    return missing(path, "not a 64-bit ELF executable");
  if (kMachine != EM_NONE && eh.e_machine != kMachine) return missing(path, "built for another CPU");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > 256)
    return missing(path, "its program headers are malformed");
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    if (::pread(fd, &ph, sizeof ph, off_t(eh.e_phoff + uint64_t(i) * sizeof ph)) != ssize_t(sizeof ph))
      return missing(path, "its program headers are cut short");
    // PT_INTERP: a dynamic loader the container's image may not have.
    if (ph.p_type == PT_INTERP) return missing(path, "dynamically linked (the static-agent preset builds the static one)");
  }
  return Ok{};
}

}  // namespace rx::hub
