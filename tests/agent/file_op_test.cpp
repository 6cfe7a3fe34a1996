// agent/file_op.cpp in a real child (ExecProcess with SpawnOptions::run, as a file channel forks
// it) on real files: each operation's status lines, its bytes, and each error code. Every run
// has a deadline, so an operation that blocks (a FIFO) fails the test instead of hanging it.
#include "agent/file_op.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "agent/process.h"
#include "protocol/frame.h"
#include "tests/agent/file_test_support.h"

namespace rx::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::names_in;
using test::read_file;
using test::TempDir;
using test::write_file;

struct Op {
  std::string op, path;
  uint32_t mode = 0;
  uint32_t flags = 0;
  FileOpOptions options;
  std::string cwd;                 // where relative paths resolve (the account's home, for the agent)
  std::optional<Account> account;  // run as (the test must be root)
};

// One file_op child and the test's end of its pipes, pumped like the agent pumps a channel.
class Running {
 public:
  explicit Running(const Op& op) {
    ::signal(SIGPIPE, SIG_IGN);  // a child that stops reading its upload must not kill the test
    SpawnOptions s;
    s.account = op.account;
    s.run = [op] {
      if (!op.cwd.empty() && ::chdir(op.cwd.c_str()) != 0) return 99;
      return file_op(op.op, op.path, op.mode, op.flags, op.options);
    };
    auto p = ExecProcess::spawn(s);
    if (!p) ADD_FAILURE() << "spawn: " << p.error().message;
    else p_ = std::move(p).value();
  }
  bool ok() const { return p_ != nullptr; }
  ExecProcess& process() { return *p_; }
  void feed(const std::string& bytes) { pending_ += bytes; }
  void end_input() { end_ = true; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  std::vector<json> status() const {
    std::vector<json> lines;
    for (size_t at = 0, nl; (nl = err_.find('\n', at)) != std::string::npos; at = nl + 1) {
      auto j = json::parse(err_.substr(at, nl - at), nullptr, false);
      if (j.is_discarded()) ADD_FAILURE() << "not JSON: " << err_.substr(at, nl - at);
      lines.push_back(j);
    }
    return lines;
  }
  const std::optional<ExitStatus>& exit() const { return exit_; }

  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      turn();
    }
    return true;
  }
  // Ends the input once what was fed is written, then runs the child to its end.
  bool finish(std::chrono::milliseconds timeout = 20s) {
    end_input();
    return pump_until([&] { return p_->stdout_fd() < 0 && p_->stderr_fd() < 0 && exit_; }, timeout);
  }

 private:
  void turn() {
    pollfd fds[4];
    nfds_t n = 0;
    for (int fd : {p_->stdout_fd(), p_->stderr_fd()})
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    if (p_->stdin_fd() >= 0 && !pending_.empty()) fds[n++] = {p_->stdin_fd(), POLLOUT, 0};
    if (!exit_) fds[n++] = {p_->child().pidfd(), POLLIN, 0};
    ::poll(fds, n, 20);
    drain(p_->stdout_fd(), out_, [&] { p_->close_stdout(); });
    drain(p_->stderr_fd(), err_, [&] { p_->close_stderr(); });
    if (p_->stdin_fd() >= 0 && !pending_.empty()) {
      ssize_t w = write_some(p_->stdin_fd(), std::span(reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size()));
      if (w < 0) pending_.clear();  // the child is done reading
      else pending_.erase(0, size_t(w));
    }
    if (end_ && pending_.empty()) p_->close_stdin();
    if (!exit_) exit_ = p_->child().try_reap();
  }
  // One read per turn, as a pipe's worth: a test that acts "once the status line is there" knows
  // the child is at most a few pipes ahead of it.
  static void drain(int fd, std::string& into, const std::function<void()>& at_eof) {
    if (fd < 0) return;
    uint8_t buf[65536];
    auto r = read_some(fd, buf);
    into.append(reinterpret_cast<char*>(buf), r.bytes);
    if (r.eof) at_eof();
  }

  std::unique_ptr<ExecProcess> p_;
  std::string pending_;
  bool end_ = false;
  std::string out_, err_;
  std::optional<ExitStatus> exit_;
};

struct Outcome {
  bool finished = false;
  std::string out, err;
  std::vector<json> status;
  int code = -1;
};

Outcome run(const Op& op, const std::string& input = "", std::chrono::milliseconds timeout = 20s) {
  Running r(op);
  Outcome o;
  if (!r.ok()) return o;
  r.feed(input);
  o.finished = r.finish(timeout);
  o.out = r.out();
  o.err = r.err();
  o.status = r.status();
  if (r.exit()) o.code = r.exit()->code;
  return o;
}

Op in(const TempDir& dir, std::string op, std::string path) {
  Op o;
  o.op = std::move(op);
  o.path = std::move(path);
  o.cwd = dir.path();
  return o;
}

// The one-line failure every refused operation gives: the code, exit 1, nothing on stdout.
void expect_failure(const Outcome& o, const std::string& code, const std::string& in_message = "") {
  ASSERT_TRUE(o.finished) << "did not end: " << o.err;
  ASSERT_EQ(o.status.size(), 1u) << o.err;
  EXPECT_EQ(o.status[0]["ok"], false) << o.err;
  EXPECT_EQ(o.status[0]["code"], code) << o.err;
  EXPECT_TRUE(o.status[0]["message"].is_string());
  if (!in_message.empty()) {
    EXPECT_NE(o.status[0]["message"].get<std::string>().find(in_message), std::string::npos) << o.err;
  }
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.code, 1);
}

void set_mtime(const std::string& path, time_t t) {
  timespec times[2] = {{t, 0}, {t, 0}};
  ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
}

std::string random_bytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng());
  return s;
}

// ---- paths ------------------------------------------------------------------------------------

TEST(FilePath, RefusesWhatTheHubRefusesBeforeTouchingAnything) {
  TempDir dir;
  ::mkdir((dir / "a").c_str(), 0755);
  write_file(dir / "b", "secret");
  for (std::string op : {"get", "put", "list", "delete"}) {
    for (const std::string& path : {std::string(".."), std::string("a/../b"), std::string("../etc/passwd"),
                                    std::string("a/.."), std::string("x\0y", 3), std::string(""),
                                    std::string(10000, 'n'), "a/" + std::string(256, 'c')}) {
      SCOPED_TRACE(op + " " + path.substr(0, 40));
      expect_failure(run(in(dir, op, path)), "bad_path");
    }
  }
  EXPECT_EQ(read_file(dir / "b"), "secret");
  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"a", "b"}));
}

TEST(FilePath, MessagesNameThePathAndTheReason) {
  TempDir dir;
  auto o = run(in(dir, "get", "missing.txt"));
  expect_failure(o, "not_found", "missing.txt");
  EXPECT_NE(o.err.find("No such file or directory"), std::string::npos) << o.err;
  // A 4,000-byte path is quoted cut short: the line stays readable.
  auto long_one = run(in(dir, "get", std::string(200, 'd') + "/" + std::string(200, 'e') + "/x"));
  expect_failure(long_one, "not_found");
  EXPECT_LT(long_one.err.size(), 500u);
}

TEST(FilePath, ASymlinkLoopIsABadPath) {
  TempDir dir;
  ::symlink("loop", (dir / "loop").c_str());
  expect_failure(run(in(dir, "get", "loop")), "bad_path");
}

TEST(FilePath, UnknownOperation) { expect_failure(run(in(TempDir(), "chmod", "x")), "bad_request"); }

// ---- get --------------------------------------------------------------------------------------

TEST(FileGet, OneStatusLineThenExactlyTheBytes) {
  TempDir dir;
  ::mkdir((dir / "sub").c_str(), 0755);
  write_file(dir / "sub/notes.txt", "hello\n", 0640);
  set_mtime(dir / "sub/notes.txt", 1700000000);
  auto o = run(in(dir, "get", "sub/notes.txt"));  // relative: against the current directory
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.err, "{\"ok\":true,\"size\":6,\"mode\":416,\"mtime\":1700000000,\"is_dir\":false}\n");
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_EQ(o.code, 0);
  // Absolute paths are used as they are.
  auto abs = run(in(dir, "get", dir / "sub/notes.txt"));
  EXPECT_EQ(abs.out, "hello\n");
  auto empty = (write_file(dir / "empty", ""), run(in(dir, "get", "empty")));
  EXPECT_EQ(empty.status.at(0)["size"], 0);
  EXPECT_EQ(empty.out, "");
  EXPECT_EQ(empty.code, 0);
}

TEST(FileGet, FiveMegabytesArriveByteIdentical) {
  TempDir dir;
  const std::string content = random_bytes(5 * 1024 * 1024 + 17);
  write_file(dir / "big.bin", content);
  auto o = run(in(dir, "get", "big.bin"));
  ASSERT_TRUE(o.finished);
  ASSERT_EQ(o.status.size(), 1u) << o.err;
  EXPECT_EQ(o.status[0]["size"], content.size());
  ASSERT_EQ(o.out.size(), content.size());
  EXPECT_TRUE(o.out == content);
  EXPECT_EQ(o.code, 0);
}

TEST(FileGet, AFileThatGrowsIsCutAtItsSizeAndOneThatShrinksIsAnError) {
  TempDir dir;
  write_file(dir / "f", std::string(1 << 20, 'a'));
  Op op = in(dir, "get", "f");
  {
    // Once the size is announced, the file grows: the download stops at the announced size.
    Running r(op);
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.pump_until([&] { return r.err().find('\n') != std::string::npos; }));
    std::ofstream(dir / "f", std::ios::app) << std::string(1000, 'b');
    ASSERT_TRUE(r.finish());
    EXPECT_EQ(r.out(), std::string(1 << 20, 'a'));
    EXPECT_EQ(r.exit()->code, 0);
  }
  {
    Running r(op);
    ASSERT_TRUE(r.ok());
    // Once the size is announced (the child is a few pipes into the file at most), it is cut.
    ASSERT_TRUE(r.pump_until([&] { return r.err().find('\n') != std::string::npos; }));
    ::truncate((dir / "f").c_str(), 1000);
    ASSERT_TRUE(r.finish());
    auto lines = r.status();
    ASSERT_EQ(lines.size(), 2u) << r.err();
    EXPECT_EQ(lines[0]["ok"], true);
    EXPECT_EQ(lines[0]["size"], (1 << 20) + 1000);
    EXPECT_EQ(lines[1]["ok"], false);
    EXPECT_EQ(lines[1]["code"], "io_error");
    EXPECT_TRUE(lines[1]["message"].get<std::string>().starts_with("file shrank")) << r.err();
    EXPECT_LE(r.out().size(), size_t(1 << 20));
    EXPECT_EQ(r.exit()->code, 1);
  }
}

TEST(FileGet, ErrorCodes) {
  TempDir dir;
  ::mkdir((dir / "d").c_str(), 0755);
  write_file(dir / "file", "x");
  expect_failure(run(in(dir, "get", "nope")), "not_found");
  expect_failure(run(in(dir, "get", "nope/deeper")), "not_found");
  expect_failure(run(in(dir, "get", "d")), "is_directory");
  expect_failure(run(in(dir, "get", "file/x")), "not_directory");
  expect_failure(run(in(dir, "get", "/dev/zero")), "not_regular_file");  // it would never end
  expect_failure(run(in(dir, "get", "/dev/null")), "not_regular_file");
}

TEST(FileGet, AFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0666), 0);
  ::symlink("fifo", (dir / "to-fifo").c_str());
  for (const char* path : {"fifo", "to-fifo"}) {
    for (const char* op : {"get", "list"}) {
      SCOPED_TRACE(std::string(op) + " " + path);
      auto r = run(in(dir, op, path), "", 5s);
      ASSERT_TRUE(r.finished) << "blocked on the FIFO";
      expect_failure(r, std::string(op) == "list" ? "not_directory" : "not_regular_file");
    }
  }
  // Nor is one replaced by an upload (a link to one is: the link is replaced, see OverwriteReplaces...).
  Op put = in(dir, "put", "fifo");
  put.flags = protocol::kFileOverwrite;
  expect_failure(run(put, "x", 5s), "not_regular_file");
}

TEST(FileGet, ASocketIsNotARegularFile) {
  TempDir dir;
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string path = dir / "sock";
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  expect_failure(run(in(dir, "get", "sock")), "not_regular_file");
  ::close(s);
}

// ---- list -------------------------------------------------------------------------------------

TEST(FileList, SortedEntriesWithTheirFacts) {
  TempDir dir;
  ::mkdir((dir / "a-dir").c_str(), 0750);
  set_mtime(dir / "a-dir", 1600000000);
  write_file(dir / "b.txt", "abc", 0600);
  set_mtime(dir / "b.txt", 1700000000);
  write_file(dir / "bad\xff.txt", "");
  write_file(dir / "we\"ird\\na\nme", "12345");
  write_file(dir / ".hidden", "");
  ::symlink("a-dir", (dir / "link-to-dir").c_str());
  ::symlink("b.txt", (dir / "link-to-file").c_str());
  ::symlink("nowhere", (dir / "dangling").c_str());
  ::chmod(dir.path().c_str(), 0751);
  set_mtime(dir.path(), 1650000000);

  auto o = run(in(dir, "list", "."));
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.err, "{\"ok\":true,\"size\":0,\"mode\":489,\"mtime\":1650000000,\"is_dir\":true}\n");
  EXPECT_EQ(o.code, 0);
  std::vector<json> entries;
  for (size_t at = 0, nl; (nl = o.out.find('\n', at)) != std::string::npos; at = nl + 1)
    entries.push_back(json::parse(o.out.substr(at, nl - at)));
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{".hidden", "a-dir", "b.txt", "bad\xef\xbf\xbd.txt", "dangling",
                                             "link-to-dir", "link-to-file", "we\"ird\\na\nme"}));
  ASSERT_EQ(entries.size(), 8u);
  EXPECT_EQ(entries[1].dump(), R"({"is_dir":true,"mode":488,"mtime":1600000000,"name":"a-dir","size":0})");
  // The exact line, key order and all: what the hub reads.
  EXPECT_NE(o.out.find("{\"name\":\"b.txt\",\"size\":3,\"mode\":384,\"is_dir\":false,\"mtime\":1700000000}\n"),
            std::string::npos) << o.out;
  EXPECT_EQ(entries[4]["is_dir"], false);  // a dangling link: the link itself
  EXPECT_EQ(entries[4]["size"], 7);        // strlen("nowhere")
  EXPECT_EQ(entries[5]["is_dir"], true);   // a link to a directory: as cd would see it
  EXPECT_EQ(entries[6]["size"], 3);        // a link to a file: the file's facts
  EXPECT_EQ(entries[6]["mode"], 0600);
  EXPECT_EQ(entries[7]["size"], 5);
}

TEST(FileList, AnEmptyDirectoryAndErrors) {
  TempDir dir;
  ::mkdir((dir / "empty").c_str(), 0755);
  write_file(dir / "file", "x");
  auto o = run(in(dir, "list", "empty"));
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.code, 0);
  EXPECT_EQ(o.status.at(0)["is_dir"], true);
  expect_failure(run(in(dir, "list", "file")), "not_directory");
  expect_failure(run(in(dir, "list", "missing")), "not_found");
}

// ---- delete -----------------------------------------------------------------------------------

TEST(FileDelete, AFileAnEmptyDirectoryAndALinkButNotWhatItPointsTo) {
  TempDir dir;
  write_file(dir / "f", "x");
  ::mkdir((dir / "d").c_str(), 0755);
  write_file(dir / "target", "kept");
  ::symlink("target", (dir / "link").c_str());
  for (const char* path : {"f", "d", "link"}) {
    auto o = run(in(dir, "delete", path));
    EXPECT_EQ(o.err, "{\"ok\":true}\n") << path;
    EXPECT_EQ(o.out, "");
    EXPECT_EQ(o.code, 0);
  }
  EXPECT_EQ(names_in(dir.path()), (std::set<std::string>{"target"}));
  EXPECT_EQ(read_file(dir / "target"), "kept");
}

TEST(FileDelete, ErrorCodes) {
  TempDir dir;
  ::mkdir((dir / "full").c_str(), 0755);
  write_file(dir / "full/x", "x");
  write_file(dir / "file", "x");
  expect_failure(run(in(dir, "delete", "full")), "not_empty");
  expect_failure(run(in(dir, "delete", "missing")), "not_found");
  expect_failure(run(in(dir, "delete", "file/x")), "not_directory");
  EXPECT_EQ(read_file(dir / "full/x"), "x");
}

// ---- put: each case with O_TMPFILE and with the named temporary of file systems without it ----

class FilePut : public testing::TestWithParam<bool> {
 protected:
  Op put(std::string path, uint32_t flags = 0, uint32_t mode = 0) {
    Op o = in(dir_, "put", std::move(path));
    o.flags = flags;
    o.mode = mode;
    o.options.use_tmpfile = GetParam();
    return o;
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Temp, FilePut, testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Tmpfile" : "NamedTemp"; });

TEST_P(FilePut, WritesTheFileWithItsModeAndLeavesNothingElse) {
  auto o = run(put("new.txt", 0, 0600), "uploaded bytes");
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.err, "{\"ok\":true,\"ready\":true}\n{\"ok\":true,\"size\":14}\n");
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.code, 0);
  EXPECT_EQ(read_file(dir_ / "new.txt"), "uploaded bytes");
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "new.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"new.txt"}));

  // Mode 0 means 0644; an empty upload is an empty file.
  auto d = run(put(dir_ / "empty"), "");
  EXPECT_EQ(d.code, 0);
  ASSERT_EQ(::stat((dir_ / "empty").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_size, 0);
}

TEST_P(FilePut, ThreeMegabytesArriveByteIdentical) {
  const std::string content = random_bytes(3 * 1024 * 1024 + 5);
  auto o = run(put("big.bin"), content);
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.status.at(1)["size"], content.size());
  EXPECT_TRUE(read_file(dir_ / "big.bin") == content);
}

TEST_P(FilePut, AnExistingFileIsKeptWithoutOverwriteAndReplacedWithIt) {
  write_file(dir_ / "f", "original");
  expect_failure(run(put("f"), "new"), "exists");
  EXPECT_EQ(read_file(dir_ / "f"), "original");
  auto o = run(put("f", protocol::kFileOverwrite), "new");
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(read_file(dir_ / "f"), "new");
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"f"}));
}

TEST_P(FilePut, AFileThatAppearsDuringTheUploadIsNotReplaced) {
  Running r(put("late"));
  ASSERT_TRUE(r.ok());
  r.feed("mine");
  ASSERT_TRUE(r.pump_until([&] { return r.err().find("ready") != std::string::npos; }));
  write_file(dir_ / "late", "theirs");
  ASSERT_TRUE(r.finish());
  auto lines = r.status();
  ASSERT_EQ(lines.size(), 2u) << r.err();
  EXPECT_EQ(lines[1]["code"], "exists");
  EXPECT_EQ(r.exit()->code, 1);
  EXPECT_EQ(read_file(dir_ / "late"), "theirs");
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"late"}));  // the temporary is gone
}

TEST_P(FilePut, OverwriteReplacesASymlinkInsteadOfWritingThroughIt) {
  write_file(dir_ / "real.txt", "target stays");
  ::symlink("real.txt", (dir_ / "link").c_str());
  ::symlink("nowhere", (dir_ / "dangling").c_str());
  expect_failure(run(put("link"), "x"), "exists");
  expect_failure(run(put("dangling"), "x"), "exists");  // a name taken by a link is taken
  for (const char* name : {"link", "dangling"}) {
    auto o = run(put(name, protocol::kFileOverwrite), "new content");
    EXPECT_EQ(o.code, 0) << o.err;
    struct stat st {};
    ASSERT_EQ(::lstat((dir_ / name).c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode)) << name << " is still a link";
    EXPECT_EQ(read_file(dir_ / name), "new content");
  }
  EXPECT_EQ(read_file(dir_ / "real.txt"), "target stays");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "nowhere"));
}

TEST_P(FilePut, ErrorCodes) {
  ::mkdir((dir_ / "d").c_str(), 0755);
  ::symlink("d", (dir_ / "link-to-d").c_str());
  write_file(dir_ / "file", "x");
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0666), 0);
  for (uint32_t flags : {0u, protocol::kFileOverwrite}) {
    expect_failure(run(put("d", flags), "x"), "is_directory");
    expect_failure(run(put("link-to-d", flags), "x"), "is_directory");
    expect_failure(run(put("d/", flags), "x"), "is_directory");
    expect_failure(run(put(".", flags), "x"), "is_directory");
    expect_failure(run(put("missing/f", flags), "x"), "not_found");
    expect_failure(run(put("file/f", flags), "x"), "not_directory");
  }
  expect_failure(run(put("fifo", protocol::kFileOverwrite), "x"), "not_regular_file");
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"d", "link-to-d", "file", "fifo"}));
  EXPECT_TRUE(names_in(dir_ / "d").empty());
}

TEST_P(FilePut, CancelledBySighupLeavesNoFileAndNoTemporary) {
  for (int sig : {SIGHUP, SIGTERM}) {
    Running r(put("upload.bin"));
    ASSERT_TRUE(r.ok());
    r.feed(std::string(300000, 'u'));  // more than a pipe holds: the child has written some
    ASSERT_TRUE(r.pump_until([&] { return r.err().find("ready") != std::string::npos; }));
    auto temporary = [&] {
      for (const auto& n : names_in(dir_.path()))
        if (n.starts_with(".upload.bin.rexec-")) return true;
      return false;
    };
    if (!GetParam()) {
      ASSERT_TRUE(temporary()) << "the named temporary should exist while the upload runs";
    }
    r.process().child().signal_group(sig);
    ASSERT_TRUE(r.finish());
    EXPECT_EQ(r.exit()->code, 128 + sig);
    EXPECT_EQ(r.exit()->signal, signal_name(sig));
    EXPECT_EQ(r.status().size(), 1u) << r.err();  // the ready line, nothing after it
    EXPECT_TRUE(names_in(dir_.path()).empty()) << *names_in(dir_.path()).begin();
  }
}

TEST_P(FilePut, TheAgentHangingUpMidUploadLeavesNothing) {
  // What close_channel does: destroying the process hangs its group up, then kills it.
  auto r = std::make_unique<Running>(put("upload.bin"));
  ASSERT_TRUE(r->ok());
  r->feed(std::string(100000, 'u'));
  ASSERT_TRUE(r->pump_until([&] { return r->err().find("ready") != std::string::npos; }));
  r.reset();
  EXPECT_TRUE(names_in(dir_.path()).empty());
}

TEST_P(FilePut, TheAgentDyingMidUploadCommitsNothing) {
  // The agent's death closes the child's stdin, which looks like the end of the upload: the
  // child must tell the two apart (PR_SET_PDEATHSIG, its parent) and put nothing in place.
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  Op op = put("cut.bin");
  pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {  // a stand-in agent: starts the upload, sends part of it, is killed
    ::close(report[0]);
    Running r(op);
    r.feed("the first half");
    bool ready = r.ok() && r.pump_until([&] { return r.err().find("ready") != std::string::npos; }, 10s);
    if (ready) r.pump_until([] { return false; }, 100ms);  // a while longer: the bytes reach the child
    pid_t child = ready ? r.process().child().pid() : -1;
    (void)!::write(report[1], &child, sizeof(child));
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t child = -1;
  ASSERT_EQ(::read(report[0], &child, sizeof(child)), ssize_t(sizeof(child)));
  ::close(report[0]);
  ASSERT_GT(child, 0);
  int pidfd = int(::syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pidfd, 0);
  ::kill(agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);
  pollfd p{pidfd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1) << "the orphaned child did not end";
  ::close(pidfd);
  EXPECT_TRUE(names_in(dir_.path()).empty()) << *names_in(dir_.path()).begin();
}

// A disk that fills: a 64 KiB tmpfs (root only, and only where mounting is allowed).
TEST_P(FilePut, ADiskThatFillsIsNoSpaceAndLeavesNothing) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  std::string mnt = dir_ / "small";
  ::mkdir(mnt.c_str(), 0755);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    std::string at;
    ~Unmount() { ::umount(at.c_str()); }
  } unmount{mnt};
  auto o = run(put("small/big"), std::string(1 << 20, 'z'));
  ASSERT_TRUE(o.finished);
  ASSERT_EQ(o.status.size(), 2u) << o.err;
  EXPECT_EQ(o.status[1]["code"], "no_space") << o.err;
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(names_in(mnt).empty());
}

// ---- as another account (root only) -----------------------------------------------------------

class FileAsNobody : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (::getuid() != 0) GTEST_SKIP() << "needs root to switch accounts";
    auto a = find_account("nobody");
    ASSERT_TRUE(a.ok());
    nobody_ = *a;
  }
  Op as_nobody(std::string op, std::string path) {
    Op o = in(dir_, std::move(op), std::move(path));
    o.account = nobody_;
    o.options.use_tmpfile = GetParam();
    return o;
  }
  TempDir dir_;
  Account nobody_;
};

INSTANTIATE_TEST_SUITE_P(Temp, FileAsNobody, testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Tmpfile" : "NamedTemp"; });

TEST_P(FileAsNobody, AnUploadBelongsToTheAccount) {
  std::string drop = dir_ / "drop";
  ::mkdir(drop.c_str(), 0777);
  ::chmod(drop.c_str(), 0777);
  auto o = run(as_nobody("put", "drop/mine.txt"), "by nobody");
  ASSERT_TRUE(o.finished);
  EXPECT_EQ(o.code, 0) << o.err;
  struct stat st {};
  ASSERT_EQ(::stat((drop + "/mine.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, nobody_.uid);
  EXPECT_EQ(st.st_gid, nobody_.gid);
  EXPECT_EQ(read_file(drop + "/mine.txt"), "by nobody");
  EXPECT_EQ(names_in(drop), (std::set<std::string>{"mine.txt"}));
}

TEST_P(FileAsNobody, TheKernelChecksEveryPermission) {
  write_file(dir_ / "root-only", "secret", 0600);
  ::mkdir((dir_ / "closed").c_str(), 0700);
  expect_failure(run(as_nobody("get", "root-only")), "permission_denied", "Permission denied");
  expect_failure(run(as_nobody("list", "closed")), "permission_denied");
  expect_failure(run(as_nobody("put", "not-mine")), "permission_denied");  // the directory is root's 0755
  expect_failure(run(as_nobody("put", "root-only"), "x"), "exists");
  Op o = as_nobody("put", "root-only");
  o.flags = protocol::kFileOverwrite;
  expect_failure(run(o, "x"), "permission_denied");
  expect_failure(run(as_nobody("delete", "root-only")), "permission_denied");
  EXPECT_EQ(read_file(dir_ / "root-only"), "secret");
}

}  // namespace
}  // namespace rx::agent
