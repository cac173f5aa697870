// Jobs of several processes on 127.0.0.1 (--nproc, or the RANK/WORLD_SIZE/MASTER_* environment
// a launcher sets): the dist module's collectives give the same answers with 1, 2 and 3 ranks,
// token_length's scan sharded over ranks equals one process, a failing or dying rank fails the
// job within a bounded time naming it, and a store that cannot be reached is named.
#include <gmock/gmock.h>

#include <chrono>
#include <fstream>
#include <map>

#include "golden.hpp"
#include "llmscope/safetensors.hpp"
#include "llmscope_command.hpp"

namespace llmscope::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Checks every collective against what it must give for the job's size, then prints one line.
constexpr const char* kCollectives = R"lua(
local r, w = dist.rank(), dist.world_size()
local s = dist.all_reduce(tensor.new({ r + 1.0, 1.0 }), "sum")
assert(s[1]:item() == w and s[0]:item() == w * (w + 1) / 2, "all_reduce sum")
assert(dist.all_reduce(tensor.new({ r }), "max")[0]:item() == w - 1, "all_reduce max")
assert(dist.all_reduce(tensor.new({ r }), "mean")[0]:item() == (w - 1) / 2, "all_reduce mean")
local g = dist.all_gather(tensor.new({ r, 2 * r }))
assert(g:size(0) == w and g[w - 1][1]:item() == 2 * (w - 1), "all_gather")
assert(dist.broadcast(tensor.new({ r * 10 }), w - 1)[0]:item() == (w - 1) * 10, "broadcast")
-- shard: every item once, in order, over the ranks
local items = {}
for i = 1, 23 do items[i] = i end
local mine = dist.shard(items)
local sum = 0
for _, v in ipairs(mine) do sum = sum + v end
assert(dist.all_reduce(tensor.new({ sum }), "sum")[0]:item() == 23 * 24 / 2, "shard sum")
local first, last = dist.shard(23)
assert(dist.all_reduce(tensor.new({ last - first }), "sum")[0]:item() == 23, "shard range")
assert(select("#", pcall(dist.all_reduce, tensor.new({ 1 }), "median")) == 2)
dist.barrier()
if dist.is_main() then
  report.text("collectives of " .. w .. " ranks")
  print(string.format("collectives ok: world %d, sum %g", w, s[0]:item()))
end
)lua";

fs::path write_script(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

TEST(Job, CollectivesAgreeWithOneTwoAndThreeRanks) {
  const auto dir = scratch_dir("job_collectives");
  const auto script = write_script(dir, "collectives.lua", kCollectives);
  auto single = llmscope({"run", script.string(), "--out", (dir / "one").string()});
  ASSERT_EQ(single.exit_code, 0) << single.output;
  EXPECT_THAT(single.output, HasSubstr("collectives ok: world 1, sum 1"));
  for (const int n : {2, 3}) {
    const auto out = dir / ("n" + std::to_string(n));
    auto job =
        llmscope({"run", script.string(), "--nproc", std::to_string(n), "--out", out.string()});
    ASSERT_EQ(job.exit_code, 0) << job.output;
    EXPECT_THAT(job.output, HasSubstr("collectives ok: world " + std::to_string(n)));
    EXPECT_TRUE(fs::exists(out / "report.html"));  // rank 0's report is the job's
    EXPECT_TRUE(fs::exists(out / "ranks" / ("rank-" + std::to_string(n - 1) + ".log")));
  }
}

// token_length's scan sharded over 2 and 3 ranks: the same histograms (exact) and correlations
// (float64 reassociation only) as one process.
TEST(Job, ATokenLengthScanOverRanksEqualsOneProcess) {
  const auto dir = scratch_dir("job_token_length");
  const auto script = write_script(dir, "scan.lua", R"lua(
local m = model.load()
local ids = (tensor.arange(0, 1000) * 7) % m.vocab_size
local lengths = (tensor.arange(0, 1000) * 3) % 7 + 1
local r = plugin("token_length").scan(m, ids, { lengths = lengths, seq_len = 16, batch_rows = 3,
                                               edges = tensor.linspace(-4, 4, 41) })
if dist.is_main() then
  tensor.save(arg[1], { r = r.r, counts = r.counts, means = r.means, outside = r.outside,
                        r_counts = r.r_counts })
end
)lua");
  std::map<int, std::map<std::string, at::Tensor>> results;
  for (const int n : {1, 2, 3}) {
    const auto saved = dir / ("n" + std::to_string(n) + ".safetensors");
    auto job = llmscope({"run", script.string(), "--nproc", std::to_string(n), "--model",
                         golden_path("gpt2-tiny").string(), "--out",
                         (dir / ("out" + std::to_string(n))).string(), "--", saved.string()});
    ASSERT_EQ(job.exit_code, 0) << job.output;
    const auto file = SafetensorsFile::open(saved);
    for (const auto& entry : file.entries())
      results[n][entry.name] = file.load(entry.name, at::kDouble);
  }
  for (const int n : {2, 3}) {
    for (const char* exact : {"counts", "outside", "r_counts"}) {
      EXPECT_TRUE(at::equal(results[n][exact], results[1][exact])) << exact << " with " << n;
    }
    for (const char* close : {"r", "means"}) {
      EXPECT_TRUE(at::allclose(results[n][close], results[1][close], 1e-9, 1e-12, true))
          << close << " with " << n;
    }
  }
}

// A script's own sharded scan: each rank feeds its documents to the streaming reducers, which
// merge across the job; 2 and 3 ranks give one process's moments, histogram and top-k.
TEST(Job, StreamingReducersMergeAcrossRanks) {
  const auto dir = scratch_dir("job_reducers");
  const auto script = write_script(dir, "reducers.lua", R"lua(
tensor.manual_seed(7)
local docs = {}
for d = 1, 23 do docs[d] = tensor.randn({ 5 + d % 4, 6 }) * (1 + d % 3) end  -- [pos, neurons]
local first, last = dist.shard(#docs)
local moments, top = stats.running({ groups = 2 }), stats.topk(4, { neurons = 6 })
local hist = stats.histogram_stream(tensor.linspace(-4, 4, 17))
for d = first + 1, last do
  moments:add(docs[d], d % 2)
  top:add(docs[d], d - 1)          -- the document's number in the whole corpus
  hist:add(docs[d])
end
moments:merge_across_job(); top:merge_across_job(); hist:merge_across_job()
if dist.is_main() then
  local r = top:result()
  tensor.save(arg[1], { mean0 = moments:mean(0), var1 = moments:var(1), counts = hist:counts(),
                        top = r.values, doc = r.doc, pos = r.pos })
end
)lua");
  std::map<int, std::map<std::string, at::Tensor>> results;
  for (const int n : {1, 2, 3}) {
    const auto saved = dir / ("n" + std::to_string(n) + ".safetensors");
    auto job = llmscope({"run", script.string(), "--nproc", std::to_string(n), "--out",
                         (dir / ("out" + std::to_string(n))).string(), "--", saved.string()});
    ASSERT_EQ(job.exit_code, 0) << job.output;
    const auto file = SafetensorsFile::open(saved);
    for (const auto& entry : file.entries())
      results[n][entry.name] = file.tensor(entry.name).clone();
  }
  for (const int n : {2, 3}) {
    for (const char* exact : {"counts", "top", "doc", "pos"}) {
      EXPECT_TRUE(at::equal(results[n][exact], results[1][exact])) << exact << " with " << n;
    }
    for (const char* close : {"mean0", "var1"}) {
      EXPECT_TRUE(at::allclose(results[n][close], results[1][close], 1e-9, 1e-12))
          << close << " with " << n;
    }
  }
}

TEST(Job, AFailingOrDyingRankFailsTheJobNamingIt) {
  const auto dir = scratch_dir("job_failures");
  const auto failing = write_script(dir, "failing.lua",
                                    "if dist.rank() == 1 then error('rank one gives up') end\n"
                                    "dist.barrier()\nprint('not reached')\n");
  const auto started = std::chrono::steady_clock::now();
  auto job = llmscope({"run", failing.string(), "--nproc", "2", "--dist-timeout", "60", "--out",
                       (dir / "failing").string()});
  EXPECT_NE(job.exit_code, 0);
  EXPECT_THAT(job.output, HasSubstr("rank one gives up"));
  EXPECT_THAT(job.output, HasSubstr("rank 1"));
  EXPECT_THAT(job.output, ::testing::Not(HasSubstr("not reached")));

  // A rank that dies without a word (exit 9 mid-script) while the other waits for it.
  const auto dying = write_script(dir, "dying.lua",
                                  "if dist.rank() == 1 then os.exit(9) end\n"
                                  "dist.barrier()\nprint('not reached')\n");
  job = llmscope({"run", dying.string(), "--nproc", "2", "--dist-timeout", "60", "--out",
                  (dir / "dying").string()});
  EXPECT_NE(job.exit_code, 0);
  EXPECT_THAT(job.output, HasSubstr("rank 1 exited with 9"));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_LT(seconds, 110.0);  // bounded by the timeouts, not a timing assertion
}

TEST(Job, AStoreThatCannotBeReachedIsNamed) {
  const auto dir = scratch_dir("job_store");
  const auto script = write_script(dir, "any.lua", "dist.barrier()\n");
  // Rank 1 of 2 with nobody serving the store: a port no one listens on.
  auto result = run_command("RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=9 " +
                            shell_quote(LLMSCOPE_CLI) + " run " + shell_quote(script.string()) +
                            " --dist-timeout 3 --out " + shell_quote((dir / "out").string()));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("rank 1 could not reach the job's store at 127.0.0.1:9"));
  result = run_command("RANK=5 WORLD_SIZE=2 " + shell_quote(LLMSCOPE_CLI) + " run " +
                       shell_quote(script.string()));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_THAT(result.output,
              HasSubstr("the environment's RANK is '5'; expected a number in [0, 1]"));
}

}  // namespace
}  // namespace llmscope::testing
