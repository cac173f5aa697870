// Every committed input of every fuzz target (the seed corpus, made of real files, and the
// regression inputs of bugs fuzzing found) run through the same entry points in the ordinary
// build, so a regression fails the test command without a fuzzing toolchain.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "fuzz_targets.hpp"

namespace llmscope::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fuzz_dir() / kind / target;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzReplay : public ::testing::TestWithParam<TargetRow> {};

TEST_P(FuzzReplay, EveryCommittedInputIsRefusedOrRunsCleanly) {
  const TargetRow& row = GetParam();
  const auto files = inputs_of(row.name);
  EXPECT_GE(files.size(), 3u) << "the seed corpus of " << row.name << " is missing";
  const fs::path start = fs::current_path();
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      row.run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << file << ": an exception other than llmscope::Error escaped: " << e.what();
    }
  }
  fs::current_path(start);
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(targets()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace llmscope::fuzz
