// Frames as JSON objects: {"type":"DATA","channel":1,"stream":1,"offset":0,"bytes":{"base64":"aGk="}}.
// Field names are SPEC.md's; msgpack bin values are written {"base64": "..."} (standard alphabet,
// padded). Used by the test vectors (protocol/testdata/NAME.json) and for readable logs of frames.
#pragma once

#include <nlohmann/json.hpp>

#include "protocol/error.h"
#include "protocol/frame.h"

namespace rx::protocol {

nlohmann::json frame_to_json(const Frame& frame);

// Errors: "bad_json" with the reason (wrong type of a field, unknown type name, bad base64).
Result<Frame> frame_from_json(const nlohmann::json& json);

}  // namespace rx::protocol
