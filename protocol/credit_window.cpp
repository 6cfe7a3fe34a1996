#include "protocol/credit_window.h"

#include <algorithm>
#include <string>

namespace rx::protocol {

CreditWindow::CreditWindow(uint32_t window, uint64_t start) : window_(window), sent_(start), acked_(start) {}

Status CreditWindow::on_sent(size_t n) {
  if (n > available())
    return make_error("window_exceeded", "sending " + std::to_string(n) + " bytes with only " +
                                             std::to_string(available()) + " bytes of credit");
  sent_ += n;
  return Ok{};
}

Status CreditWindow::on_ack(uint64_t offset) {
  if (offset > sent_)
    return make_error("ack_beyond_sent", "ACK for offset " + std::to_string(offset) + " but only " +
                                             std::to_string(sent_) + " bytes were sent");
  acked_ = std::max(acked_, offset);  // an older ACK arriving late changes nothing
  return Ok{};
}

void CreditWindow::rewind(uint64_t offset) {
  acked_ = offset;
  sent_ = offset;
}

void CreditWindow::set_window(uint32_t window) { window_ = window; }

ReceiveCursor::ReceiveCursor(uint32_t window, uint64_t start)
    : window_(window), received_(start), consumed_(start), acked_(start) {}

ReceiveCursor::Accept ReceiveCursor::on_data(uint64_t offset, size_t len) {
  Accept a;
  uint64_t end = offset + len;
  if (end <= received_) {
    a.skip = len;  // all of it is a resend
    return a;
  }
  if (offset < received_) a.skip = size_t(received_ - offset);
  if (offset > received_) {
    a.gap = offset - received_;
    // Bytes below the gap will never come: count them as consumed so credit keeps flowing.
    consumed_ = std::max(consumed_, offset);
  }
  received_ = end;
  return a;
}

void ReceiveCursor::on_consumed(uint64_t offset) { consumed_ = std::max(consumed_, std::min(offset, received_)); }

std::optional<uint64_t> ReceiveCursor::take_ack(bool force) {
  if (consumed_ <= acked_) return std::nullopt;
  if (consumed_ - acked_ >= window_ / 4 || force) {
    acked_ = consumed_;
    return acked_;
  }
  return std::nullopt;
}

}  // namespace rx::protocol
