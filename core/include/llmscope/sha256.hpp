// SHA-256 (FIPS 180-4), for weight hashes in run manifests and model cards and for checking
// downloaded files. Streams, so a multi-gigabyte checkpoint is hashed in constant memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace llmscope {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  std::array<uint8_t, 32> digest();  // finishes; the object is spent afterwards
  std::string hex_digest();

 private:
  void block(const uint8_t* chunk);
  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(std::string_view data);
// Throws llmscope::Error naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace llmscope
