#!/usr/bin/python3
"""Independent decoder for protocol/testdata: Debian's python3-msgpack (not msgpack-c) decodes every
NAME.msgpack, maps positions to field names from protocol/SPEC.md section 1.4 (written out again
here, by hand), and must agree with NAME.json. Exit 0 when all agree; prints each disagreement."""
import base64
import json
import pathlib
import sys

import msgpack

# SPEC.md 1.4: field names after [type, channel], by type number.
FIELDS = {
    1: ("HELLO", ["proto_min", "proto_max", "agent_version", "capabilities", "host", "channels", "labels"]),
    2: ("WELCOME", ["proto", "hub_version", "agent_id", "credential", "resume"]),
    3: ("OPEN", ["kind", "argv", "env", "cols", "rows", "window", "user", "account"]),
    4: ("OPENED", ["pid"]),
    5: ("DATA", ["stream", "offset", "bytes"]),
    6: ("ACK", ["stream", "offset"]),
    7: ("RESIZE", ["cols", "rows"]),
    8: ("SIGNAL", ["signal"]),
    9: ("EXIT", ["code", "signal"]),
    10: ("CLOSE", ["reason"]),
    11: ("STATS", ["stats"]),
    12: ("ERROR", ["code", "message"]),
    13: ("FILE", ["op", "path", "window", "mode", "flags", "user", "account"]),
}
# Positional compound values become objects in JSON (SPEC.md section 3).
TUPLES = {
    ("HELLO", "channels"): ["channel", "input_received"],
    ("WELCOME", "resume"): ["channel", "stream", "received"],
}


def to_json(value):
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def decode(raw):
    frame = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    assert isinstance(frame, list) and len(frame) >= 2, "not an array of at least [type, channel]"
    type_no, channel = frame[0], frame[1]
    if type_no not in FIELDS:
        return {"type": type_no, "channel": channel}
    name, fields = FIELDS[type_no]
    out = {"type": name, "channel": channel}
    for field, value in zip(fields, frame[2:]):
        if (name, field) in TUPLES:
            value = [dict(zip(TUPLES[(name, field)], item)) for item in value]
        out[field] = to_json(value)
    return out


def main(directory):
    failures = 0
    names = sorted(p.stem for p in pathlib.Path(directory).glob("*.json"))
    for name in names:
        base = pathlib.Path(directory) / name
        want = json.loads(base.with_suffix(".json").read_text())
        try:
            got = decode(base.with_suffix(".msgpack").read_bytes())
        except Exception as e:  # noqa: BLE001 - report any decoder failure as a disagreement
            got = f"python3-msgpack could not decode it: {e}"
        if got != want:
            failures += 1
            print(f"DISAGREE {name}:\n  json:   {want}\n  python: {got}")
        else:
            print(f"agree    {name}")
    print(f"{len(names) - failures} passed, {failures} failed")
    return 1 if failures or not names else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
