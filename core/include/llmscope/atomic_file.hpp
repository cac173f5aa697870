// Writing files so that an interrupted run never leaves a half-written file that looks whole:
// write a temporary file beside the target, flush it to disk, rename it into place, and flush the
// folder so the rename survives a crash. Every file llmscope writes goes through here.
#pragma once

#include <filesystem>
#include <string_view>

namespace llmscope {

// Creates missing parent folders. Throws llmscope::Error naming `path` on failure, leaving any
// previous file at `path` untouched.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// For a writer that produces the file itself (a stream, a child process, a download): a unique
// hidden temporary name beside `path` (the same folder, so the rename is atomic; the same
// extension, for programs that go by it).
std::filesystem::path temp_path_beside(const std::filesystem::path& path);

// The last step of every atomic write: flushes `temp` to disk, renames it onto `path` and
// flushes the folder. On failure removes `temp` and throws llmscope::Error naming `path`; a
// previous file at `path` stays untouched.
void commit_atomic(const std::filesystem::path& temp, const std::filesystem::path& path);

}  // namespace llmscope
