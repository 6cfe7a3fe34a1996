// Fuzzes decode(): never crash, never leak; and whatever decodes re-encodes to bytes that decode to
// the same frame (the encoder and decoder agree on everything the decoder accepts).
#include <algorithm>
#include <cstdlib>

#include "protocol/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto frame = rx::protocol::decode(std::span(data, size));
  // The fast path may decline anything, but what it accepts must be exactly what decode() says.
  if (auto view = rx::protocol::peek_data(std::span(data, size))) {
    auto* d = frame.ok() ? std::get_if<rx::protocol::Data>(&*frame) : nullptr;
    if (!d || d->channel != view->channel || d->stream != view->stream || d->offset != view->offset ||
        !std::equal(d->bytes.begin(), d->bytes.end(), view->bytes.begin(), view->bytes.end()))
      std::abort();
  }
  if (!frame.ok()) {
    if (frame.error().code.empty() || frame.error().message.empty()) std::abort();
    return 0;
  }
  // Whatever the decoder accepts is within the limits the encoder checks.
  auto bytes = rx::protocol::encode(*frame);
  if (!bytes.ok()) std::abort();
  auto again = rx::protocol::decode(*bytes);
  if (!again.ok() || !(*again == *frame)) std::abort();
  return 0;
}
