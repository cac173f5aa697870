// libFuzzer's entry point for one target, chosen at compile time (LLMSCOPE_FUZZ_TARGET): each
// fuzz executable of scripts/fuzz is this file and the table of targets.
#include <ATen/Parallel.h>

#include "fuzz_targets.hpp"

namespace {

const llmscope::fuzz::TargetRow& target() {
  static const llmscope::fuzz::TargetRow* row = llmscope::fuzz::find_target(LLMSCOPE_FUZZ_TARGET);
  return *row;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);  // one fuzzing process per core
  return target().run == nullptr;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return target().run(data, size);
}
