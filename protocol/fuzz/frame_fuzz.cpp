// Fuzzes decode(): never crash, never leak; and whatever decodes re-encodes to bytes that decode to
// the same frame (the encoder and decoder agree on everything the decoder accepts).
#include <cstdlib>

#include "protocol/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto frame = rx::protocol::decode(std::span(data, size));
  if (!frame.ok()) {
    if (frame.error().code.empty() || frame.error().message.empty()) std::abort();
    return 0;
  }
  auto bytes = rx::protocol::encode(*frame);
  auto again = rx::protocol::decode(bytes);
  if (!again.ok() || !(*again == *frame)) std::abort();
  return 0;
}
