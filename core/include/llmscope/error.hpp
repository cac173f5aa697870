// llmscope::Error: the one exception type the core throws for bad input.
// Messages name the thing (file, tensor, argument) and what was expected, so they can be shown
// to a user as they are.
#pragma once

#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace llmscope {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "<path>: <message>" — the form every file-related error takes.
[[noreturn]] void throw_file_error(const std::filesystem::path& path, const std::string& message);

// "[2, 3]": a tensor shape as messages and reports write it ("[]" for a scalar).
std::string shape_string(c10::ArrayRef<int64_t> shape);

}  // namespace llmscope
