#include "llmscope/error.hpp"

namespace llmscope {

void throw_file_error(const std::filesystem::path& path, const std::string& message) {
  throw Error(path.string() + ": " + message);
}

std::string shape_string(c10::ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

}  // namespace llmscope
