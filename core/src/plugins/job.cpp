// The job's collectives as the host registered them (llmscope/job.hpp).
#include "llmscope/job.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

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

at::Tensor all_gather_concat(const at::Tensor& t, int64_t dim) {
  const Collectives c = current();
  if (c.world_size == 1) return t;
  // Every rank says what it holds (defined, dtype, sizes), so a rank without a share learns the
  // shape of the others' and every part can be padded to the longest: collectives move equal
  // shapes. Bool travels as uint8.
  constexpr int64_t kMaxDims = 8;
  if (t.defined() && (t.dim() == 0 || t.dim() > kMaxDims))
    throw Error("job: all_gather_concat needs a tensor of 1 to 8 dims, got " +
                std::to_string(t.dim()));
  at::Tensor header = at::full({kMaxDims + 2}, -1, at::kLong);
  if (t.defined()) {
    header[0] = static_cast<int64_t>(t.scalar_type());
    header[1] = t.dim();
    for (int64_t i = 0; i < t.dim(); ++i) header[i + 2] = t.size(i);
  }
  const at::Tensor headers = c.all_gather(header).to(at::kCPU).contiguous();  // [ranks, 10]
  const auto h = headers.accessor<int64_t, 2>();
  int reference = -1;
  for (int r = 0; r < c.world_size && reference < 0; ++r)
    if (h[r][0] >= 0) reference = r;
  if (reference < 0) return t;  // nobody had a part
  const auto type = static_cast<at::ScalarType>(h[reference][0]);
  const int64_t dims = h[reference][1];
  dim = c10::maybe_wrap_dim(dim, dims);
  std::vector<int64_t> lengths;
  for (int r = 0; r < c.world_size; ++r) {
    if (h[r][0] < 0) {
      lengths.push_back(0);
      continue;
    }
    bool agrees = h[r][0] == h[reference][0] && h[r][1] == dims;
    for (int64_t i = 0; i < dims && agrees; ++i)
      agrees = i == dim || h[r][i + 2] == h[reference][i + 2];
    if (!agrees) {
      throw Error("job: all_gather_concat: rank " + std::to_string(r) +
                  "'s part differs from rank " + std::to_string(reference) +
                  "'s in dtype or in a dim other than " + std::to_string(dim));
    }
    lengths.push_back(h[r][dim + 2]);
  }
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  const at::ScalarType wire = type == at::kBool ? at::kByte : type;
  std::vector<int64_t> shape;
  for (int64_t i = 0; i < dims; ++i) shape.push_back(h[reference][i + 2]);
  shape[static_cast<size_t>(dim)] = longest;
  at::Tensor mine = at::zeros(shape, at::TensorOptions().dtype(wire));
  if (t.defined() && t.size(dim) > 0)
    mine.narrow(dim, 0, t.size(dim)).copy_(t.detach().to(at::kCPU, wire));
  const at::Tensor all = c.all_gather(mine);  // [ranks, ...]
  std::vector<at::Tensor> parts;
  for (int r = 0; r < c.world_size; ++r)
    parts.push_back(all[r].narrow(dim, 0, lengths[static_cast<size_t>(r)]));
  const at::Tensor joined = at::cat(parts, dim).to(type);
  return t.defined() ? joined.to(t.device()) : joined;
}

int64_t add_to_counter(const std::string& key, int64_t delta) {
  const Collectives c = current();
  if (c.world_size > 1 && c.add_to_counter) return c.add_to_counter(key, delta);
  static std::map<std::string, int64_t> local;
  std::lock_guard<std::mutex> lock(guard);
  return local[key] += delta;
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

std::pair<int64_t, int64_t> shard_batches(int64_t count, int64_t batch_size) {
  if (batch_size < 1)
    throw Error("job: batch size must be at least 1, got " + std::to_string(batch_size));
  const auto batches = shard_range((count + batch_size - 1) / batch_size);
  return {std::min(count, batches.first * batch_size),
          std::min(count, batches.second * batch_size)};
}

}  // namespace llmscope::job
