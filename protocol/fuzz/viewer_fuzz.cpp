// Fuzzes both viewer-protocol decoders: never crash; a decoded message re-encodes to the input.
#include <cstdlib>
#include <variant>

#include "protocol/viewer.h"

namespace viewer = rx::protocol::viewer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (auto m = viewer::decode_client(in); m.ok()) {
    std::vector<uint8_t> out;
    if (auto* i = std::get_if<viewer::Input>(&*m)) out = viewer::encode_input(i->bytes);
    if (auto* r = std::get_if<viewer::Resize>(&*m)) out = viewer::encode_resize(r->cols, r->rows);
    if (!out.empty() && !std::equal(out.begin(), out.end(), in.begin(), in.end())) std::abort();
  }
  if (auto m = viewer::decode_server(in); m.ok()) {
    std::vector<uint8_t> out;
    if (auto* o = std::get_if<viewer::Output>(&*m)) out = viewer::encode_output(o->offset, o->bytes);
    if (auto* e = std::get_if<viewer::Event>(&*m)) {
      if (!viewer::valid_utf8(e->json)) std::abort();
      out = viewer::encode_event(e->json);
    }
    if (!out.empty() && !std::equal(out.begin(), out.end(), in.begin(), in.end())) std::abort();
  }
  return 0;
}
