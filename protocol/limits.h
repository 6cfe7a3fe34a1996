// Every size limit of the agent link and the viewer protocol, decided once and named once.
// protocol/SPEC.md quotes these numbers; tests/protocol/limits_test.cpp keeps the two in step.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rx::protocol {

// Versions of the agent link this build speaks (HELLO carries the agent's range, WELCOME the pick).
inline constexpr uint32_t kProtocolVersionMin = 1;
inline constexpr uint32_t kProtocolVersionMax = 1;

// Largest payload of one DATA frame. Producers cut output into chunks of at most this size.
inline constexpr size_t kMaxChunk = 64 * 1024;
// Largest encoded frame of any type: a full chunk plus room for the header. Checked before decoding.
inline constexpr size_t kMaxFrameBytes = kMaxChunk + 1024;
// Largest string anywhere in a frame (names, argv items, env values, reasons).
inline constexpr size_t kMaxString = 16 * 1024;
// Largest array or map (argv, env, capability list, channel list, GPU list).
inline constexpr size_t kMaxElements = 1024;
// Deepest nesting of arrays and maps; the deepest legal frame (STATS' gpus[i].procs[j]: frame array,
// stats map, gpus array, GpuStats map, procs array, GpuProcess map) needs all 6.
inline constexpr size_t kMaxDepth = 6;

// Default credit per channel: bytes a sender may have unacknowledged. Small enough that ^C is
// never queued behind megabytes, large enough to keep loopback and LAN links busy.
inline constexpr uint32_t kDefaultWindow = 256 * 1024;
inline constexpr uint32_t kMinWindow = 4 * 1024;
inline constexpr uint32_t kMaxWindow = 16 * 1024 * 1024;

// Output kept per terminal for late or returning viewers (agent and hub each keep one).
inline constexpr size_t kReplayBytes = 2 * 1024 * 1024;

// Viewer protocol: largest message a client may send (input is cut by the client).
inline constexpr size_t kMaxViewerMessage = 64 * 1024;

}  // namespace rx::protocol
