// The job this process belongs to, for code that links only the core (plugins, the streaming
// reducers): its rank, its size, an exact sum and a gather across its ranks. The host registers
// these when the process joins a job of several processes (llmscope/distributed.hpp, over c10d);
// until then, and in any program without a host, the job is this one process and every
// collective returns its input. (Plugin ABI 2.3; all_gather_concat and add_to_counter 2.4.)
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace llmscope::job {

struct Collectives {
  int rank = 0;
  int world_size = 1;
  // Elementwise sum over the ranks; every rank gets the result.
  std::function<at::Tensor(const at::Tensor&)> all_reduce_sum;
  // Every rank's tensor stacked in rank order: [world_size, ...]; shapes must agree.
  std::function<at::Tensor(const at::Tensor&)> all_gather;
  // Adds `delta` to the job-wide counter `key` and returns its new value (the store's atomic
  // add: no collective, each rank calls it when it likes).
  std::function<int64_t(const std::string& key, int64_t delta)> add_to_counter;
};

// Registers the job's collectives (the host, once it joined); a default Collectives resets to
// a single process.
void set_collectives(Collectives collectives);

int rank();
int world_size();
bool is_main();  // rank 0
at::Tensor all_reduce_sum(const at::Tensor& t);
at::Tensor all_gather(const at::Tensor& t);
// Every rank's `t` joined along `dim` in rank order: the whole of a result each rank computed a
// shard_range part of. Sizes along `dim` may differ between ranks, the other dims and the dtype
// must agree; a rank with no part passes an undefined tensor (and gets the whole on the CPU).
// Comes back on t's device and dtype (bool included). In one process returns t.
at::Tensor all_gather_concat(const at::Tensor& t, int64_t dim = 0);
// Adds `delta` to the job's counter `key` and returns the sum over every rank's additions so
// far (not a collective: for progress shown by one rank). In one process a local counter.
int64_t add_to_counter(const std::string& key, int64_t delta);

// The part of `count` items that `rank` of `world_size` handles: a contiguous range
// [begin, end), the ranks' ranges in rank order covering every item once, sizes differing by at
// most one. shard_range(count) is this process's part.
std::pair<int64_t, int64_t> shard_range(int64_t count, int rank, int world_size);
std::pair<int64_t, int64_t> shard_range(int64_t count);
// This process's part of `count` items run `batch_size` at a time: a shard_range of the
// one-process plan's batches, as items [begin, end). Every batch is then one that a single
// process runs too, with the same float rounding. (Plugin ABI 2.4.)
std::pair<int64_t, int64_t> shard_batches(int64_t count, int64_t batch_size);

}  // namespace llmscope::job
