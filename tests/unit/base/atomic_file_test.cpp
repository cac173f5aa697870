// The one atomic write: temporary names beside the target, the commit (flush, rename, flush the
// folder), and what a failed commit leaves behind.
#include "llmscope/atomic_file.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "llmscope/error.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/llmscope-atomic-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  fs::path dir_;
};

TEST_F(AtomicFileTest, TemporaryNamesAreHiddenUniqueAndBesideTheTarget) {
  const fs::path target = dir_ / "figure.svg";
  const fs::path a = temp_path_beside(target), b = temp_path_beside(target);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.parent_path(), target.parent_path());
  EXPECT_EQ(a.filename().string().front(), '.');
  EXPECT_EQ(a.extension(), ".svg");  // programs that choose a format by extension still can
}

TEST_F(AtomicFileTest, CommitReplacesTheTargetWithTheTemporaryFile) {
  const fs::path target = dir_ / "data.txt";
  write_file_atomic(target, "old");
  const fs::path temp = temp_path_beside(target);
  std::ofstream(temp) << "new";
  commit_atomic(temp, target);
  EXPECT_EQ(read(target), "new");
  EXPECT_EQ(listing(), (std::set<std::string>{"data.txt"}));
}

TEST_F(AtomicFileTest, AFailedCommitRemovesTheTemporaryFileAndNamesTheTarget) {
  const fs::path target = dir_ / "taken";
  fs::create_directories(target / "inside");  // rename() onto a non-empty folder fails
  const fs::path temp = temp_path_beside(target);
  std::ofstream(temp) << "data";
  try {
    commit_atomic(temp, target);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(target.string() + ": cannot rename ", 0), 0u) << message;
  }
  EXPECT_EQ(listing(), (std::set<std::string>{"taken"}));
}

TEST_F(AtomicFileTest, AMissingTemporaryFileIsAnError) {
  EXPECT_THROW(commit_atomic(dir_ / ".nothing.tmp", dir_ / "target"), Error);
  EXPECT_FALSE(fs::exists(dir_ / "target"));
}

}  // namespace
}  // namespace llmscope
