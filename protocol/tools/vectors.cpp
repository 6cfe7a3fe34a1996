// protocol-vectors DIR: for every DIR/NAME.json (a frame in frame_json form) writes DIR/NAME.msgpack,
// its one canonical encoding. Run after adding or editing a vector; tests/protocol/vectors_test.cpp
// and tests/protocol/check_vectors.py (an independent decoder) check the committed pairs.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "protocol/codec.h"
#include "protocol/frame_json.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: protocol-vectors DIR\n";
    return 2;
  }
  namespace fs = std::filesystem;
  int written = 0;
  for (const auto& entry : fs::directory_iterator(argv[1])) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) {
      std::cerr << entry.path() << ": not valid JSON\n";
      return 1;
    }
    auto frame = rx::protocol::frame_from_json(json);
    if (!frame) {
      std::cerr << entry.path() << ": " << frame.error().message << "\n";
      return 1;
    }
    auto encoded = rx::protocol::encode(*frame);
    if (!encoded) {
      std::cerr << entry.path() << ": " << encoded.error().message << "\n";
      return 1;
    }
    const auto& bytes = *encoded;
    auto out_path = entry.path();
    out_path.replace_extension(".msgpack");
    std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    ++written;
  }
  std::cout << "wrote " << written << " vectors\n";
  return 0;
}
