#include "hub/api/file_stream.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/log_line.h"

namespace rx::hub {
namespace {

constexpr size_t kChunk = 64 * 1024;
// A stream stops producing while this much is queued for its client, and goes on when drained.
constexpr size_t kBacklog = 256 * 1024;

class FileStream : public std::enable_shared_from_this<FileStream> {
 public:
  FileStream(Fd fd, std::shared_ptr<HttpExchange> ex, std::string name, off_t offset, std::optional<uint64_t> length)
      : fd_(std::move(fd)), ex_(std::move(ex)), name_(std::move(name)), offset_(offset), left_(length) {}
  void start() {
    // The callbacks hold this stream; done() drops them, which ends the cycle exchange -> stream.
    auto self = shared_from_this();
    ex_->on_drain = [self] { self->pump(); };
    ex_->on_gone = [self] { self->done(); };
    pump();
  }

 private:
  void pump() {
    // A write can drain at once and call on_drain, so pump again from inside itself: that inner
    // call returns at once (this loop goes on), or every chunk would nest a frame deeper and the
    // inner done() would drop the callbacks, the last owners of this stream, under the outer one.
    if (pumping_) return;
    auto keep = shared_from_this();
    pumping_ = true;
    pump_chunks();
    pumping_ = false;
  }
  void pump_chunks() {
    std::string buf(kChunk, '\0');
    while (ex_ && !ex_->gone() && ex_->backlog() < kBacklog) {
      size_t want = left_ ? size_t(std::min<uint64_t>(*left_, kChunk)) : kChunk;
      ssize_t n = want == 0 ? 0 : ::pread(fd_.get(), buf.data(), want, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        log("error", "download.read_failed", {{"file", name_}, {"reason", std::strerror(errno)}});
        return done();
      }
      if (n == 0) {
        ex_->finish();
        return done();
      }
      offset_ += n;
      if (left_) *left_ -= uint64_t(n);
      if (!ex_->write(std::string_view(buf.data(), size_t(n)))) return done();
    }
    if (ex_ && ex_->gone()) done();
  }
  void done() {
    if (!ex_) return;
    auto ex = std::move(ex_);
    ex->on_drain = nullptr;
    ex->on_gone = nullptr;
  }

  Fd fd_;
  std::shared_ptr<HttpExchange> ex_;
  std::string name_;
  off_t offset_;
  std::optional<uint64_t> left_;
  bool pumping_ = false;
};

}  // namespace

void stream_file(Fd fd, const std::shared_ptr<HttpExchange>& ex, Response head, std::string name, off_t offset,
                 std::optional<uint64_t> length) {
  ex->start_stream(std::move(head));
  std::make_shared<FileStream>(std::move(fd), ex, std::move(name), offset, length)->start();
}

}  // namespace rx::hub
