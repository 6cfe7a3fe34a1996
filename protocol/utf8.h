// UTF-8, strictly (Unicode table 3-7: no overlongs, no surrogates, nothing above U+10FFFF), for
// everything that checks or repairs text from peers: viewer events, log lines, the hub's JSON.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rx::protocol {

// Length of the well-formed UTF-8 sequence at the start of `s` (1-4), or 0 when there is none.
size_t utf8_sequence(std::string_view s);

// `text` with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string clean_utf8(std::string_view text);

}  // namespace rx::protocol
