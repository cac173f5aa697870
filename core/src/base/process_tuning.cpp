// Process-wide settings for speed (llmscope/process_tuning.hpp).
#include "llmscope/process_tuning.hpp"

#include "base/cpu_quota.hpp"

#include <ATen/Parallel.h>
#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>

namespace llmscope {
namespace {

// The first line of a small file, or "" where it cannot be read.
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

namespace detail {

int cgroup_cpu_limit(const std::filesystem::path& cgroup_root,
                     const std::string& proc_self_cgroup) {
  std::istringstream lines(proc_self_cgroup);
  std::string line, path;
  while (std::getline(lines, line)) {
    if (line.rfind("0::/", 0) == 0) path = line.substr(3);  // the v2 hierarchy's line
  }
  int limit = 0;
  while (!path.empty()) {
    const std::string max = first_line(cgroup_root.string() + path + "/cpu.max");
    const auto space = max.find(' ');
    if (space != std::string::npos && max.compare(0, space, "max") != 0) {
      const double quota = std::atof(max.substr(0, space).c_str());
      const double period = std::atof(max.substr(space + 1).c_str());
      if (quota > 0 && period > 0) {
        const int cpus = std::max(1, static_cast<int>(std::ceil(quota / period)));
        limit = limit == 0 ? cpus : std::min(limit, cpus);
      }
    }
    if (path == "/") break;
    const auto slash = path.find_last_of('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return limit;
}

}  // namespace detail

int available_cores() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return 0;
  std::set<std::pair<std::string, std::string>> cores;  // (package, core) of each allowed CPU
  int cpus = 0;
  bool topology = true;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    ++cpus;
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string core = first_line(dir + "core_id");
    if (core.empty()) topology = false;
    cores.emplace(first_line(dir + "physical_package_id"), core);
  }
  int count = topology && !cores.empty() ? static_cast<int>(cores.size()) : cpus;
  std::ifstream self("/proc/self/cgroup");
  std::ostringstream cgroup;
  cgroup << self.rdbuf();
  if (const int limit = detail::cgroup_cpu_limit("/sys/fs/cgroup", cgroup.str()); limit > 0) {
    count = std::min(count, limit);
  }
  return count;
}

void tune_process() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    setenv("ATEN_CPU_CAPABILITY", "avx512", /*overwrite=*/0);
  }
  constexpr int kKept = 256 << 20;
  mallopt(M_MMAP_THRESHOLD, kKept);
  mallopt(M_TRIM_THRESHOLD, kKept);
  if (std::getenv("OMP_NUM_THREADS") == nullptr && std::getenv("MKL_NUM_THREADS") == nullptr) {
    if (const int cores = available_cores(); cores > 0 && cores != at::get_num_threads()) {
      at::set_num_threads(cores);
    }
  }
}

}  // namespace llmscope
