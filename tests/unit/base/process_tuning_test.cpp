// The process's thread count: the cores available_cores() finds (affinity, SMT siblings, a
// cgroup's CPU quota) and tune_process() giving ATen one thread per core unless told otherwise.
#include "llmscope/process_tuning.hpp"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "base/cpu_quota.hpp"
#include "golden.hpp"

namespace llmscope {
namespace {

namespace fs = std::filesystem;
using testing::ScopedEnv;

// Restores the calling thread's CPU affinity when it goes.
class SavedAffinity {
 public:
  SavedAffinity() { sched_getaffinity(0, sizeof(saved_), &saved_); }
  ~SavedAffinity() { sched_setaffinity(0, sizeof(saved_), &saved_); }
  const cpu_set_t& saved() const { return saved_; }

 private:
  cpu_set_t saved_;
};

TEST(AvailableCores, CountsTheCoresOfTheAffinityMask) {
  SavedAffinity affinity;
  const int cpus = CPU_COUNT(&affinity.saved());
  const int cores = available_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, cpus);
  int first = 0;
  while (!CPU_ISSET(first, &affinity.saved())) ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  EXPECT_EQ(available_cores(), 1) << "a process held to one CPU (taskset -c " << first << ")";
}

TEST(TuneProcess, AtenRunsOneThreadPerAvailableCoreUnlessOmpNumThreadsSaysOtherwise) {
  if (std::getenv("OMP_NUM_THREADS") == nullptr && std::getenv("MKL_NUM_THREADS") == nullptr) {
    // The test program's main called tune_process() before any tensor work.
    EXPECT_EQ(at::get_num_threads(), available_cores());
  }
  const int before = at::get_num_threads();
  {
    ScopedEnv omp{"OMP_NUM_THREADS", "3"};
    at::set_num_threads(3);
    tune_process();
    EXPECT_EQ(at::get_num_threads(), 3) << "a count the user set is kept";
  }
  {
    ScopedEnv omp{"OMP_NUM_THREADS", std::nullopt};
    ScopedEnv mkl{"MKL_NUM_THREADS", std::nullopt};
    tune_process();
    EXPECT_EQ(at::get_num_threads(), available_cores());
  }
  at::set_num_threads(before);
}

// A cgroup v2 tree as /sys/fs/cgroup shows it, under a temporary folder.
class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("llmscope_cgroup_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "kubepods" / "pod1" / "container");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write_max(const std::string& cgroup, const std::string& text) {
    std::ofstream(root_ / cgroup / "cpu.max") << text << "\n";
  }
  fs::path root_;
};

TEST_F(CgroupTree, TheTightestQuotaUpTheTreeRoundedUp) {
  write_max("kubepods", "max 100000");
  write_max("kubepods/pod1", "250000 100000");         // 2.5 CPUs: 3 threads
  write_max("kubepods/pod1/container", "max 100000");  // no limit of its own
  const std::string self = "0::/kubepods/pod1/container\n";
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, self), 3);
  write_max("kubepods", "150000 100000");
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, self), 2);
  write_max("kubepods/pod1/container", "50000 100000");  // half a CPU still gets one thread
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, self), 1);
}

TEST_F(CgroupTree, NoLimitWithoutAQuotaOrAVersion2Cgroup) {
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, "0::/kubepods/pod1/container\n"), 0);  // no files
  write_max("kubepods", "max 100000");
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, "0::/kubepods/pod1/container\n"), 0);
  write_max("", "200000 100000");  // a container's own view: its cgroup is the root
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, "0::/\n"), 2);
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, "12:cpu,cpuacct:/docker/abc\n"), 0)
      << "cgroup v1 only: not read";
  write_max("kubepods/pod1", "garbage");
  EXPECT_EQ(detail::cgroup_cpu_limit(root_, "0::/kubepods/pod1\n"), 2) << "only the root's";
}

}  // namespace
}  // namespace llmscope
