// The CPU limit a cgroup v2 hierarchy sets on a process (internal: available_cores()).
#pragma once

#include <filesystem>
#include <string>

namespace llmscope::detail {

// The tightest cpu.max quota from the cgroup that `proc_self_cgroup` (the text of
// /proc/self/cgroup) names up to the root of `cgroup_root` (/sys/fs/cgroup), in CPUs rounded up;
// 0 when none is set ("max"), the process is in no v2 cgroup or the files cannot be read.
int cgroup_cpu_limit(const std::filesystem::path& cgroup_root, const std::string& proc_self_cgroup);

}  // namespace llmscope::detail
