#include "llmscope/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "llmscope/error.hpp"

namespace llmscope {

namespace {

std::string errno_text(int error) { return std::strerror(error); }

// fsync of a file or folder by path; folders only best effort (some file systems refuse).
bool sync_path(const std::filesystem::path& path, bool folder) {
  const int fd = ::open(path.c_str(), (folder ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return folder;
  const bool ok = ::fsync(fd) == 0 || folder;
  ::close(fd);
  return ok;
}

}  // namespace

std::filesystem::path temp_path_beside(const std::filesystem::path& path) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path temp = path;
  temp.replace_filename("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) +
                        "-" + std::to_string(counter++) + path.extension().string());
  return temp;
}

void commit_atomic(const std::filesystem::path& temp, const std::filesystem::path& path) {
  // fsync before rename: otherwise a crash could leave the new name on unwritten data.
  if (!sync_path(temp, /*folder=*/false)) {
    const std::string why = errno_text(errno);
    ::unlink(temp.c_str());
    throw_file_error(path, "cannot flush " + temp.string() + " to disk: " + why);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text(errno);
    ::unlink(temp.c_str());
    throw_file_error(path, "cannot rename " + temp.string() + " into place: " + why);
  }
  // Persist the rename itself; the data is already safe under one name or the other.
  sync_path(path.has_parent_path() ? path.parent_path() : std::filesystem::path("."),
            /*folder=*/true);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) throw_file_error(path, "cannot create its folder: " + ec.message());
  const auto temp = temp_path_beside(path);
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_file_error(path, "cannot write: " + errno_text(errno));
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno_text(errno);
      ::close(fd);
      ::unlink(temp.c_str());
      throw_file_error(path, "write failed: " + why);
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const std::string why = errno_text(errno);
    ::unlink(temp.c_str());
    throw_file_error(path, "cannot close " + temp.string() + ": " + why);
  }
  commit_atomic(temp, path);
}

}  // namespace llmscope
