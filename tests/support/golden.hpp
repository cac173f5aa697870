// Test support: where the Hugging Face goldens live, and one tensor comparison that reports the
// worst element and its index (so a failing parity test says where, not just that).
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace llmscope::testing {

std::filesystem::path golden_dir();  // tests/golden
std::filesystem::path golden_path(const std::string& relative);

// A scratch folder unique to the running test, removed and recreated on each call.
std::filesystem::path scratch_dir(const std::string& name);

// |actual - expected| <= atol + rtol * |expected| everywhere (where `mask` is true if given).
::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected,
                                         double rtol = 1e-4, double atol = 1e-4,
                                         const at::Tensor& mask = at::Tensor());

}  // namespace llmscope::testing

#define EXPECT_TENSOR_CLOSE(actual, expected, ...) \
  EXPECT_TRUE(::llmscope::testing::tensors_close((actual), (expected), ##__VA_ARGS__))
