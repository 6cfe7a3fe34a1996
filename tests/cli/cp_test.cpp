// rexec cp against a real hub and a real agent on this machine: the agent's files are this
// test's files, so what an upload wrote is read straight from disk, and a download is compared
// with the file the agent read. Covers the round trip of 5 MB byte for byte, downloads into a
// directory and to stdout, -f to overwrite, the hub's 404 in one line, no progress bar off a
// terminal (and one on a terminal), and a Ctrl-C that leaves nothing on either side.
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "tests/cli/cli_support.h"
#include "tests/integration/relay_support.h"

namespace rx::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = gen();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

void write_file(const std::string& path, const std::string& bytes, mode_t mode = 0644) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
  }
  ::chmod(path.c_str(), mode);
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

class CliCp : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(wait_online(hub, "cp-box", 10s));
    auto made = hub.api("POST", "/api/v1/terminals", json{{"kind", "agent"}, {"agent", "cp-box"}, {"name", "files"}}.dump());
    ASSERT_EQ(made.status, 201) << made.body;
    id = json::parse(made.body)["id"];
  }
  // The hub's own answer to a request the CLI also makes: what the CLI must show.
  std::string hub_error(const std::string& method, const std::string& path, const std::string& body = "") {
    auto r = hub.api(method, "/api/v1/terminals/" + id + "/files?path=" + path, body);
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("error", "") : "";
  }

  HubFixture hub;
  AgentProcess agent{hub, "cp-box"};
  std::string id;
  TempDir remote{"rexec-cp-remote"};  // where the agent reads and writes (absolute paths)
  TempDir local{"rexec-cp-local"};
  Cli cli{hub, hub.admin_token()};
};

TEST_F(CliCp, FiveMegabytesGoUpAndComeBackByteIdentical) {
  const std::string data = random_bytes(5 * 1024 * 1024 + 17, 42);
  write_file(local / "big.bin", data, 0640);

  auto up = cli.run({"cp", local / "big.bin", id + ":" + (remote / "big.bin")});
  ASSERT_EQ(up.status, 0) << up.err;
  EXPECT_EQ(up.err, "") << "no progress bar (nor anything else) when stderr is not a terminal";
  EXPECT_EQ(up.out, "");
  EXPECT_TRUE(read_file(remote / "big.bin") == data) << "the uploaded file differs";
  EXPECT_EQ(mode_of(remote / "big.bin"), 0640u) << "the local file's permission bits by default";

  // Back into a file named here, by the terminal's name this time.
  auto down = cli.run({"cp", "files:" + (remote / "big.bin"), local / "back.bin"});
  ASSERT_EQ(down.status, 0) << down.err;
  EXPECT_EQ(down.err, "");
  EXPECT_TRUE(read_file(local / "back.bin") == data) << "the downloaded file differs";

  // Into a directory: under the remote name; to stdout: the bytes themselves.
  TempDir into("rexec-cp-into");
  auto to_dir = cli.run({"cp", id + ":" + (remote / "big.bin"), into.path()});
  ASSERT_EQ(to_dir.status, 0) << to_dir.err;
  EXPECT_TRUE(read_file(into / "big.bin") == data);
  EXPECT_EQ(entries(into.path()), std::vector<std::string>{"big.bin"}) << "no temp file left beside it";
  auto to_stdout = cli.run({"cp", id + ":" + (remote / "big.bin"), "-"});
  ASSERT_EQ(to_stdout.status, 0) << to_stdout.err;
  EXPECT_TRUE(to_stdout.out == data) << "stdout had " << to_stdout.out.size() << " bytes";
  EXPECT_EQ(entries(local.path()), (std::vector<std::string>{"back.bin", "big.bin"}));
}

TEST_F(CliCp, NamesAreEncodedDirectoriesKeepTheNameAndStdinUploads) {
  // Characters a query would misread unencoded: space, &, #, +, %, and UTF-8.
  const std::string odd = "a b&c=d#e+f%g-\xc3\xa9.txt";
  write_file(local / odd, "odd\n");
  auto up = cli.run({"cp", local / odd, id + ":" + (remote / odd)});
  ASSERT_EQ(up.status, 0) << up.err;
  EXPECT_EQ(read_file(remote / odd), "odd\n");
  EXPECT_EQ(entries(remote.path()), std::vector<std::string>{odd});

  // A remote path ending in / is a directory: the file keeps its local name.
  ::mkdir((remote / "sub").c_str(), 0755);
  write_file(local / "kept.txt", "kept\n");
  auto into = cli.run({"cp", local / "kept.txt", id + ":" + (remote / "sub") + "/"});
  ASSERT_EQ(into.status, 0) << into.err;
  EXPECT_EQ(read_file(remote / "sub/kept.txt"), "kept\n");

  // From stdin (a pipe: no size, so chunked), with --mode.
  auto piped = cli.run({"cp", "--mode", "0600", "-", id + ":" + (remote / "piped.txt")}, "from a pipe\n");
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_EQ(read_file(remote / "piped.txt"), "from a pipe\n");
  EXPECT_EQ(mode_of(remote / "piped.txt"), 0600u);

  // Download of the odd name back, into a directory.
  TempDir back("rexec-cp-back");
  auto down = cli.run({"cp", id + ":" + (remote / odd), back.path() + "/"});
  ASSERT_EQ(down.status, 0) << down.err;
  EXPECT_EQ(read_file(back / odd), "odd\n");
}

TEST_F(CliCp, OverwritingNeedsForce) {
  write_file(local / "v1.txt", "version 1\n");
  write_file(local / "v2.txt", "version 2\n");
  std::string dest = id + ":" + (remote / "f.txt");
  ASSERT_EQ(cli.run({"cp", local / "v1.txt", dest}).status, 0);

  auto again = cli.run({"cp", local / "v2.txt", dest});
  EXPECT_NE(again.status, 0);
  EXPECT_EQ(lines(again.err), 1u) << again.err;
  std::string message = hub_error("PUT", remote / "f.txt", "x");
  ASSERT_FALSE(message.empty()) << "the hub gave no message for PUT onto an existing file";
  EXPECT_NE(again.err.find(message), std::string::npos) << again.err << " lacks the hub's: " << message;
  EXPECT_NE(again.err.find("-f"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.rfind("rexec: ", 0), 0u) << again.err;
  EXPECT_EQ(read_file(remote / "f.txt"), "version 1\n") << "refused, the old file stays";

  auto forced = cli.run({"cp", "-f", "--mode", "0600", local / "v2.txt", dest});
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(read_file(remote / "f.txt"), "version 2\n");
  EXPECT_EQ(mode_of(remote / "f.txt"), 0600u);
  EXPECT_EQ(entries(remote.path()), std::vector<std::string>{"f.txt"});
}

TEST_F(CliCp, MissingFilesAndBadArgumentsAreOneClearLine) {
  write_file(local / "keep.txt", "mine\n");
  auto missing = cli.run({"cp", id + ":" + (remote / "nope.txt"), local / "keep.txt"});
  EXPECT_NE(missing.status, 0);
  EXPECT_EQ(lines(missing.err), 1u) << missing.err;
  std::string message = hub_error("GET", remote / "nope.txt");
  ASSERT_FALSE(message.empty()) << "the hub gave no message for GET of a missing file";
  EXPECT_NE(missing.err.find(message), std::string::npos) << missing.err << " lacks the hub's: " << message;
  EXPECT_NE(missing.err.find(remote / "nope.txt"), std::string::npos) << missing.err;
  EXPECT_EQ(read_file(local / "keep.txt"), "mine\n") << "a failed download leaves the local file alone";
  EXPECT_EQ(entries(local.path()), std::vector<std::string>{"keep.txt"}) << "and no temp file";
  EXPECT_TRUE(missing.out.empty());

  // Into a directory: nothing made there either.
  TempDir into("rexec-cp-into");
  EXPECT_NE(cli.run({"cp", id + ":" + (remote / "nope.txt"), into.path()}).status, 0);
  EXPECT_TRUE(entries(into.path()).empty());

  // A missing local file: said before the hub is asked.
  auto no_local = cli.run({"cp", local / "absent", id + ":" + (remote / "x")});
  EXPECT_NE(no_local.status, 0);
  EXPECT_EQ(no_local.err, "rexec: cannot read " + (local / "absent") + ": No such file or directory\n");

  auto no_terminal = cli.run({"cp", local / "keep.txt", "fils:" + (remote / "x")});
  EXPECT_NE(no_terminal.status, 0);
  EXPECT_NE(no_terminal.err.find("no terminal 'fils' (did you mean files?)"), std::string::npos) << no_terminal.err;

  for (auto args : {std::vector<std::string>{"cp", local / "keep.txt", local / "other"},
                    std::vector<std::string>{"cp", id + ":a", id + ":b"}}) {
    auto r = cli.run(args);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("one side LOCAL, the other ID:PATH"), std::string::npos) << r.err;
  }
  auto bad_mode = cli.run({"cp", "--mode", "0999", local / "keep.txt", id + ":" + (remote / "x")});
  EXPECT_NE(bad_mode.status, 0);
  EXPECT_NE(bad_mode.err.find("bad --mode '0999'"), std::string::npos) << bad_mode.err;
  EXPECT_TRUE(entries(remote.path()).empty()) << "nothing reached the machine";
}

TEST_F(CliCp, AProgressBarOnlyOnATerminal) {
  write_file(local / "p.bin", random_bytes(3 * 1024 * 1024, 7));
  // On a pipe (Cli::run): nothing on stderr, as FiveMegabytes... checks for both directions.
  auto quiet = cli.run({"cp", local / "p.bin", id + ":" + (remote / "quiet.bin")});
  ASSERT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.err, "");

  auto up = cli.run_on_tty({"cp", local / "p.bin", id + ":" + (remote / "p.bin")});
  ASSERT_EQ(up.status, 0) << up.err;
  EXPECT_NE(up.err.find("100%"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("3.0 MiB / 3.0 MiB"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find(remote / "p.bin"), std::string::npos) << up.err;
  auto down = cli.run_on_tty({"cp", id + ":" + (remote / "p.bin"), local / "q.bin"});
  ASSERT_EQ(down.status, 0) << down.err;
  EXPECT_NE(down.err.find("100%"), std::string::npos) << down.err;
  EXPECT_EQ(read_file(local / "q.bin"), read_file(local / "p.bin"));
}

TEST_F(CliCp, CtrlCDuringAnUploadLeavesNothingOnTheMachine) {
  // From a pipe the test holds open: the upload is under way, and cannot finish, until the signal.
  CliChild child(cli, {"cp", "-", id + ":" + (remote / "cut.bin")});
  ASSERT_TRUE(child.write(random_bytes(200 * 1024, 3)));  // less than the way holds: never blocks
  // The agent's temp file open in the target directory: the upload has reached the machine.
  ASSERT_TRUE(eventually([&] { return open_files_in(remote.path()) > 0; }, 15s)) << child.err();
  EXPECT_FALSE(exists(remote / "cut.bin")) << "not renamed into place before the end";
  ::kill(child.pid(), SIGINT);
  auto status = child.wait(15s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 130) << child.err();
  EXPECT_NE(child.err().find("interrupted"), std::string::npos) << child.err();
  // The hub cancels, the agent's child drops its temp file and goes: nothing open, nothing named.
  EXPECT_TRUE(eventually([&] { return open_files_in(remote.path()) == 0; }, 15s)) << "the agent still holds a file there";
  EXPECT_TRUE(entries(remote.path()).empty()) << "left on the machine: " << entries(remote.path())[0];
}

}  // namespace
}  // namespace rx::test
