// The fuzz targets: one entry point per kind of untrusted input (safetensors files and sharded
// indexes, config.json, tokenizer files plus the text they encode, Lua source), each taking
// arbitrary bytes. The same functions run under libFuzzer (fuzz_main.cpp, a clang build:
// scripts/fuzz) and, in every build, replay the committed corpus and regression inputs
// (fuzz_replay_test.cpp). A target returns normally when the input is refused with
// llmscope::Error, as bad input must be; anything else that escapes (another exception type, a
// crash, a sanitizer report) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace llmscope::fuzz {

using Target = int (*)(const uint8_t* data, size_t size);

struct TargetRow {
  const char* name;  // also the folder of its inputs under tests/fuzz/corpus and regressions
  Target run;
};

const std::vector<TargetRow>& targets();
const TargetRow* find_target(std::string_view name);

// Inputs made of several files (vocab.json, merges.txt and a text...) are the files joined by
// this line, so seeds stay readable and mutations can move bytes between the parts.
inline constexpr std::string_view kPartSeparator = "\n--llmscope-fuzz-part--\n";
// The first `count` parts of an input; missing ones are empty, extra separators stay in the
// last part.
std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t count);

// A folder of this process's own, emptied on each call (the targets write their files there).
std::filesystem::path fresh_scratch(const std::string& name);
void write_bytes(const std::filesystem::path& path, std::string_view bytes);
// tests/fuzz: its corpus/ and regressions/ folders hold each target's inputs.
std::filesystem::path fuzz_dir();

int fuzz_safetensors(const uint8_t* data, size_t size);
int fuzz_safetensors_index(const uint8_t* data, size_t size);
int fuzz_config(const uint8_t* data, size_t size);
int fuzz_bpe_files(const uint8_t* data, size_t size);
int fuzz_tokenizer_json(const uint8_t* data, size_t size);
int fuzz_wordpiece(const uint8_t* data, size_t size);
int fuzz_lua(const uint8_t* data, size_t size);

}  // namespace llmscope::fuzz
