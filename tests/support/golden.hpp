// Test support: where the Hugging Face goldens live, and one tensor comparison that reports the
// worst element and its index (so a failing parity test says where, not just that).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "llmscope/error.hpp"
#include "llmscope/hook_points.hpp"

namespace llmscope::testing {

std::filesystem::path golden_dir();  // tests/golden
std::filesystem::path golden_path(const std::string& relative);

// A scratch folder unique to the running test, removed and recreated on each call.
std::filesystem::path scratch_dir(const std::string& name);

// One line per hook point ("name = alias  [shape]"), compared with tests/golden/<snapshot>;
// LLMSCOPE_UPDATE_SNAPSHOTS=1 rewrites the file (a rename of a hook point is then a visible diff).
::testing::AssertionResult matches_hook_snapshot(const HookPointTable& table,
                                                 const std::string& snapshot);

// Runs a shell command line, returning its exit code and stdout + stderr together.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult run_command(const std::string& command_line);
// Quotes one argument for /bin/sh.
std::string shell_quote(const std::string& argument);

// |actual - expected| <= atol + rtol * |expected| everywhere (where `mask` is true if given).
::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected,
                                         double rtol = 1e-4, double atol = 1e-4,
                                         const at::Tensor& mask = at::Tensor());

// fn() throws llmscope::Error whose message is exactly `message` (error texts are API: users
// read them, so tests pin them whole).
template <typename Fn>
::testing::AssertionResult throws_message(Fn&& fn, const std::string& message) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.what() == message) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "message was: " << e.what() << "\nexpected:    " << message;
  }
  return ::testing::AssertionFailure() << "nothing was thrown; expected: " << message;
}

// The message of the llmscope::Error that `fn` throws ("" if it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Writes `text` to `path` as bytes, replacing the file (test inputs, broken on purpose or not).
void write_text_file(const std::filesystem::path& path, const std::string& text);
// The bytes of `path` ("" when it cannot be read: the assertion on them then says so).
std::string read_text_file(const std::filesystem::path& path);

// Sets (or, with nullopt, removes) an environment variable until the end of the scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) {
      setenv(name_.c_str(), value->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace llmscope::testing

#define EXPECT_TENSOR_CLOSE(actual, expected, ...) \
  EXPECT_TRUE(::llmscope::testing::tensors_close((actual), (expected), ##__VA_ARGS__))
