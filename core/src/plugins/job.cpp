// The job's collectives as the host registered them (llmscope/job.hpp).
#include "llmscope/job.hpp"

#include <mutex>

#include "llmscope/error.hpp"

namespace llmscope::job {

namespace {

std::mutex guard;

Collectives& registered() {
  static Collectives collectives;
  return collectives;
}

Collectives current() {
  std::lock_guard<std::mutex> lock(guard);
  return registered();
}

}  // namespace

void set_collectives(Collectives collectives) {
  if (collectives.world_size < 1 || collectives.rank < 0 ||
      collectives.rank >= collectives.world_size) {
    throw Error("job: rank " + std::to_string(collectives.rank) + " of " +
                std::to_string(collectives.world_size) + " is not a rank of the job");
  }
  if (collectives.world_size > 1 && (!collectives.all_reduce_sum || !collectives.all_gather)) {
    throw Error("job: a job of several processes needs its all_reduce_sum and all_gather");
  }
  std::lock_guard<std::mutex> lock(guard);
  registered() = std::move(collectives);
}

int rank() { return current().rank; }
int world_size() { return current().world_size; }
bool is_main() { return rank() == 0; }

at::Tensor all_reduce_sum(const at::Tensor& t) {
  const Collectives c = current();
  return c.world_size > 1 ? c.all_reduce_sum(t) : t;
}

at::Tensor all_gather(const at::Tensor& t) {
  const Collectives c = current();
  return c.world_size > 1 ? c.all_gather(t) : t.unsqueeze(0);
}

std::pair<int64_t, int64_t> shard_range(int64_t count, int rank, int world_size) {
  if (count < 0 || world_size < 1 || rank < 0 || rank >= world_size) {
    throw Error("job: cannot shard " + std::to_string(count) + " items for rank " +
                std::to_string(rank) + " of " + std::to_string(world_size));
  }
  return {count * rank / world_size, count * (rank + 1) / world_size};
}

std::pair<int64_t, int64_t> shard_range(int64_t count) {
  const Collectives c = current();
  return shard_range(count, c.rank, c.world_size);
}

}  // namespace llmscope::job
