// Runs the built llmscope executable (LLMSCOPE_CLI) with arguments, each shell-quoted.
#pragma once

#include <string>
#include <vector>

#include "golden.hpp"

namespace llmscope::testing {

inline CommandResult llmscope(const std::vector<std::string>& args) {
  std::string command = shell_quote(LLMSCOPE_CLI);
  for (const auto& a : args) command += " " + shell_quote(a);
  return run_command(command);
}

}  // namespace llmscope::testing
