#include "llmscope/error.hpp"

namespace llmscope {

void throw_file_error(const std::filesystem::path& path, const std::string& message) {
  throw Error(path.string() + ": " + message);
}

}  // namespace llmscope
