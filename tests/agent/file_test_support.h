// What the file-channel tests share: a scratch directory that goes away, and small file helpers.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

#include "tests/support/process.h"

namespace rx::agent::test {

// A directory of its own per test (0755, so another account may look in when a test wants it).
class TempDir : public rx::test::TempDir {
 public:
  TempDir() : rx::test::TempDir("rexec-files") { ::chmod(path().c_str(), 0755); }
};

inline void write_file(const std::string& path, const std::string& bytes, mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  ::chmod(path.c_str(), mode);
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every name in `dir`, dot files too: what a test checks for leftovers.
inline std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

}  // namespace rx::agent::test
