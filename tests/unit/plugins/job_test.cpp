// The job's arithmetic (llmscope/job.hpp) without processes: how work is shared out over ranks,
// and what the collectives give in one process and under a registered job whose ranks all hold
// the same tensor. Real jobs of 2 and 3 processes are tested in tests/cli/job_test.cpp.
#include "llmscope/job.hpp"

#include <gmock/gmock.h>

#include <functional>

#include "llmscope/error.hpp"

namespace llmscope::job {
namespace {

// Every item in exactly one rank, in rank order: the ranges tile [0, count).
TEST(JobShares, RangesAndBatchesTileTheItemsInRankOrder) {
  for (int world = 1; world <= 5; ++world) {
    for (int64_t count = 0; count <= 40; ++count) {
      int64_t next = 0;
      for (int rank = 0; rank < world; ++rank) {
        const auto [begin, end] = shard_range(count, rank, world);
        EXPECT_EQ(begin, next);
        EXPECT_LE(end - begin, count / world + 1);
        next = end;
      }
      EXPECT_EQ(next, count);
    }
  }
  // shard_batches: whole batches of the one-process plan (begins on a batch boundary).
  for (int world = 1; world <= 4; ++world) {
    for (int64_t batch = 1; batch <= 6; ++batch) {
      for (int64_t count = 0; count <= 30; ++count) {
        int64_t next = 0;
        for (int rank = 0; rank < world; ++rank) {
          Collectives c;
          c.rank = rank;
          c.world_size = world;
          c.all_reduce_sum = [](const at::Tensor& t) { return t; };
          c.all_gather = [](const at::Tensor& t) { return t.unsqueeze(0); };
          set_collectives(c);
          const auto [begin, end] = shard_batches(count, batch);
          EXPECT_EQ(begin, next) << count << " items, batch " << batch << ", rank " << rank;
          EXPECT_TRUE(begin == count || begin % batch == 0);
          next = end;
        }
        EXPECT_EQ(next, count);
      }
    }
  }
  set_collectives({});
  EXPECT_THROW(shard_batches(10, 0), Error);
}

TEST(JobShares, OneProcessCollectivesReturnTheirInput) {
  set_collectives({});
  const at::Tensor t = at::arange(6).reshape({2, 3});
  EXPECT_TRUE(all_gather_concat(t).is_same(t));
  EXPECT_FALSE(all_gather_concat(at::Tensor()).defined());
  EXPECT_EQ(add_to_counter("job_test/a", 3), 3);
  EXPECT_EQ(add_to_counter("job_test/a", 4), 7);
  EXPECT_EQ(add_to_counter("job_test/b", 0), 0);
}

// Two ranks holding the same part: the whole is the part twice, in its dtype (bool included)
// and along the dim asked for.
TEST(JobShares, AllGatherConcatJoinsThePartsAlongTheirDim) {
  Collectives c;
  c.rank = 0;
  c.world_size = 2;
  c.all_reduce_sum = [](const at::Tensor& t) { return t * 2; };
  c.all_gather = [](const at::Tensor& t) { return at::stack({t, t}); };
  set_collectives(c);
  const at::Tensor flags = at::tensor({1, 0, 1}).to(at::kBool);
  const at::Tensor joined = all_gather_concat(flags);
  EXPECT_EQ(joined.scalar_type(), at::kBool);
  EXPECT_TRUE(at::equal(joined, at::cat({flags, flags})));
  const at::Tensor m = at::arange(6, at::kDouble).reshape({2, 3});
  EXPECT_TRUE(at::equal(all_gather_concat(m, 1), at::cat({m, m}, 1)));
  EXPECT_TRUE(at::equal(all_gather_concat(m, -2), at::cat({m, m}, 0)));
  EXPECT_THROW(all_gather_concat(at::zeros({})), Error);
  set_collectives({});
}

// A rank whose part is shorter joins with its own length; one whose part has another dtype or
// another size in a dim that is not joined is refused, naming both ranks. (Rank 1 here answers
// every gather with this rank's tensor, its header edited by `peer`.)
Collectives two_ranks_where_rank_1(std::function<void(at::Tensor&)> peer) {
  Collectives c;
  c.rank = 0;
  c.world_size = 2;
  c.all_reduce_sum = [](const at::Tensor& t) { return t * 2; };
  c.all_gather = [peer](const at::Tensor& t) {
    at::Tensor theirs = t.clone();
    if (t.dim() == 1 && t.size(0) == 10 && t.scalar_type() == at::kLong) peer(theirs);
    return at::stack({t, theirs});
  };
  return c;
}

TEST(JobShares, AllGatherConcatTakesEachRanksLengthAndRefusesPartsThatDiffer) {
  const at::Tensor m = at::arange(6, at::kDouble).reshape({2, 3});
  set_collectives(two_ranks_where_rank_1([](at::Tensor& header) { header[2] = 1; }));
  EXPECT_TRUE(at::equal(all_gather_concat(m), at::cat({m, m.narrow(0, 0, 1)})));
  set_collectives(two_ranks_where_rank_1(
      [](at::Tensor& header) { header[0] = static_cast<int64_t>(at::kFloat); }));
  EXPECT_THAT([&] { all_gather_concat(m); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr(
                  "rank 1's part differs from rank 0's in dtype or in a dim other than 0")));
  set_collectives(two_ranks_where_rank_1([](at::Tensor& header) { header[3] = 4; }));
  EXPECT_THROW(all_gather_concat(m), Error);
  EXPECT_TRUE(at::equal(all_gather_concat(m, 1).narrow(1, 0, 3), m));  // dim 1 may differ
  set_collectives({});
}

}  // namespace
}  // namespace llmscope::job
