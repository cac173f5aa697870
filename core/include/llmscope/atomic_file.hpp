// Writing files so that an interrupted run never leaves a half-written file that looks whole:
// write a temporary file beside the target, flush it to disk, then rename it into place.
#pragma once

#include <filesystem>
#include <string_view>

namespace llmscope {

// Creates missing parent folders. Throws llmscope::Error naming `path` on failure, leaving any
// previous file at `path` untouched.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace llmscope
