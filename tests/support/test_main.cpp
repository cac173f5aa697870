// The test programs' main: the process settings the llmscope executable makes, then GoogleTest.
#include <gtest/gtest.h>

#include "llmscope/process_tuning.hpp"

int main(int argc, char** argv) {
  llmscope::tune_process();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
