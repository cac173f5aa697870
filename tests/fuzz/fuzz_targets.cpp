// The table of fuzz targets and what they share: splitting an input into files, a scratch
// folder per process.
#include "fuzz_targets.hpp"

#include <unistd.h>

#include <fstream>

#include "golden.hpp"

namespace llmscope::fuzz {

namespace fs = std::filesystem;

const std::vector<TargetRow>& targets() {
  static const std::vector<TargetRow> rows = {
      {"safetensors", fuzz_safetensors},
      {"safetensors_index", fuzz_safetensors_index},
      {"config", fuzz_config},
      {"bpe_files", fuzz_bpe_files},
      {"tokenizer_json", fuzz_tokenizer_json},
      {"wordpiece", fuzz_wordpiece},
      {"lua", fuzz_lua},
  };
  return rows;
}

const TargetRow* find_target(std::string_view name) {
  for (const auto& row : targets()) {
    if (name == row.name) return &row;
  }
  return nullptr;
}

std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t count) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t pos = 0;
  while (parts.size() + 1 < count) {
    const size_t at = input.find(kPartSeparator, pos);
    if (at == std::string_view::npos) break;
    parts.emplace_back(input.substr(pos, at - pos));
    pos = at + kPartSeparator.size();
  }
  parts.emplace_back(input.substr(std::min(pos, input.size())));
  parts.resize(count);
  return parts;
}

fs::path fresh_scratch(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("llmscope-fuzz-" + std::to_string(getpid())) / name;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  return dir;
}

void write_bytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

fs::path fuzz_dir() { return testing::golden_path("../fuzz").lexically_normal(); }

}  // namespace llmscope::fuzz
