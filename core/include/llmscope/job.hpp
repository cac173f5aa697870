// The job this process belongs to, for code that links only the core (plugins, the streaming
// reducers): its rank, its size, an exact sum and a gather across its ranks. The host registers
// these when the process joins a job of several processes (llmscope/distributed.hpp, over c10d);
// until then, and in any program without a host, the job is this one process and every
// collective returns its input. (Plugin ABI 2.3.)
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace llmscope::job {

struct Collectives {
  int rank = 0;
  int world_size = 1;
  // Elementwise sum over the ranks; every rank gets the result.
  std::function<at::Tensor(const at::Tensor&)> all_reduce_sum;
  // Every rank's tensor stacked in rank order: [world_size, ...]; shapes must agree.
  std::function<at::Tensor(const at::Tensor&)> all_gather;
};

// Registers the job's collectives (the host, once it joined); a default Collectives resets to
// a single process.
void set_collectives(Collectives collectives);

int rank();
int world_size();
bool is_main();  // rank 0
at::Tensor all_reduce_sum(const at::Tensor& t);
at::Tensor all_gather(const at::Tensor& t);

// The part of `count` items that `rank` of `world_size` handles: a contiguous range
// [begin, end), the ranks' ranges in rank order covering every item once, sizes differing by at
// most one. shard_range(count) is this process's part.
std::pair<int64_t, int64_t> shard_range(int64_t count, int rank, int world_size);
std::pair<int64_t, int64_t> shard_range(int64_t count);

}  // namespace llmscope::job
