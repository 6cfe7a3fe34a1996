// The one way the hub turns JSON into text (responses, viewer and dashboard events, stored host
// info): json_text() never throws. nlohmann's dump() throws type_error 316 on a string that is
// not UTF-8, and strings reach the hub's JSON from peers (paths, headers, agents' HELLO and
// ERROR frames, old store rows); here invalid bytes become U+FFFD instead. tests/hub/json_text_test
// fails if any other file of hub/ calls dump().
//
// clean_utf8() does the same to one string where it enters from a peer, so what is stored and
// logged is already valid.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace rx::hub {

std::string json_text(const nlohmann::json& value);

// `text` with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD
// (overlongs, surrogates and code points above U+10FFFF are not well-formed).
std::string clean_utf8(std::string_view text);

// clean_utf8, and control characters (below U+0020, and DEL) replaced by '?': for names shown
// on one line (agent names from the X-Rexec-Agent-Name header).
std::string clean_name(std::string_view text);

}  // namespace rx::hub
