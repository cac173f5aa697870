// Jobs of several processes on 127.0.0.1 (--nproc, or the RANK/WORLD_SIZE/MASTER_* environment
// a launcher sets): the dist module's collectives give the same answers with 1, 2 and 3 ranks;
// the plugins' scans and sweeps and the streaming reducers sharded over ranks equal one process,
// and so does a lesson; a failing, dying or killed rank fails the job within a bounded time
// naming it; and a store that cannot be reached is named.
#include <gmock/gmock.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include "child_process.hpp"
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
-- Bad arguments are Lua errors naming the argument, the same on every rank (no collective runs).
local function fails(expected, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok and tostring(err):find(expected, 1, true), tostring(err))
end
fails("(the number of items must be >= 0)", dist.shard, -1)
fails("(list or integer expected, got string)", dist.shard, "x")
fails("unknown reduction 'median' (expected sum, mean, max or min)", dist.all_reduce,
      tensor.new({ 1 }), "median")
fails("dist.broadcast: root " .. w .. " is not a rank (0 to " .. (w - 1) .. ")", dist.broadcast,
      tensor.new({ 1 }), w)
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

// One thread per process, for jobs whose numbers are compared with one process's bit for bit: a
// lone process would otherwise run on every core and each of N ranks on 1/N of them, and some
// BLAS kernels (OpenBLAS's Haswell and Zen sgemm) round a product's columns differently when the
// threads cut them differently. The sharding is what these tests check.
struct OneThreadPerProcess {
  ScopedEnv omp{"OMP_NUM_THREADS", "1"};
  ScopedEnv openblas{"OPENBLAS_NUM_THREADS", "1"};
};

// Runs `script` (which saves its results to arg[1] on rank 0) with 1, 2 and 3 ranks; returns
// each job's tensors by rank count.
std::map<int, std::map<std::string, at::Tensor>> results_by_ranks(
    const fs::path& dir, const fs::path& script, const std::vector<std::string>& extra = {}) {
  const OneThreadPerProcess threads;
  std::map<int, std::map<std::string, at::Tensor>> results;
  for (const int n : {1, 2, 3}) {
    const auto saved = dir / ("n" + std::to_string(n) + ".safetensors");
    std::vector<std::string> args = {"run",     script.string(),
                                     "--nproc", std::to_string(n),
                                     "--out",   (dir / ("out" + std::to_string(n))).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.insert(args.end(), {"--", saved.string()});
    auto job = llmscope(args);
    EXPECT_EQ(job.exit_code, 0) << job.output;
    if (job.exit_code != 0) return {};
    const auto file = SafetensorsFile::open(saved);
    for (const auto& entry : file.entries())
      results[n][entry.name] = file.tensor(entry.name).clone();
  }
  return results;
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
  const OneThreadPerProcess threads;
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

// Every plugin that scans or sweeps shards its work by rank and merges: the t-test selection
// (paired and independent), laminar lesions, the negation scan, the replace and subspace sweeps
// and both context comparisons give one process's numbers with 2 and 3 ranks. Passes are whole
// batches of the one-process plan, so activations are the same bits; the selection's moments
// merge rank by rank (float64 reassociation).
TEST(Job, PluginScansAndSweepsOverRanksEqualOneProcess) {
  const auto dir = scratch_dir("job_plugins");
  const auto script = write_script(dir, "plugins.lua", R"lua(
local m = model.load()
local tl, out = plugin("tlesion"), {}
-- 13 condition pairs: rows that differ only at one target position
local ids = (tensor.rand({ 13, 9 }, { seed = 3 }) * 900 + 20):floor():long()
local a, b, pos = ids:clone(), ids:clone(), {}
for r = 0, 12 do
  pos[r + 1] = (r * 3) % 8 + 1
  a[r][pos[r + 1]] = 5
  b[r][pos[r + 1]] = 7
end
local where = { positions_a = pos, positions_b = pos, batch_size = 4 }
local sel = tl.select(m, a, b, where)
out.sel_t, out.sel_p, out.sel_a, out.sel_b = sel.t, sel.p_adjusted, sel.a_gt_b, sel.b_gt_a
local ind = tl.select(m, a, b, { positions_a = pos, positions_b = pos, batch_size = 6,
                                  test = "independent", equal_var = false })
out.ind_t, out.ind_df = ind.t, ind.df
local lam = tl.laminar(m, a, b, a:narrow(0, 0, 3), { positions_a = pos, positions_b = pos,
  batch_size = 4, targets = { 5, 7 }, lesions = { { position = 2, neurons = "a" } } })
out.lam_delta, out.lam_zeroed, out.lam_mean = lam.delta, lam.zeroed, lam.mean_abs_delta

local windows = function(seed) return (tensor.rand({ 11, 8 }, { seed = seed }) * 900 + 20):floor():long() end
local neg = plugin("negation").scan(m, windows(5), windows(6), { batch_size = 3, layers = { 1, 3 } })
out.neg_beta, out.neg_p, out.neg_acc = neg.mlp.beta, neg.mlp.p, neg.mlp.accuracy
out.neg_best = neg.mlp.best_activations

local row = ids[0]:narrow(0, 0, 8)
local rep = plugin("replace").sweep(m, row, { layers = { 0, 1, 3 }, rates = { 0.2, 0.5, 0.9 },
                                              batch_size = 2 })
out.rep_logprob, out.rep_pred = rep.logprob, rep.prediction
local sub = plugin("subspace").sweep(m, row, { k = 2, batch_size = 1 })
out.sub_delta, out.sub_variance, out.sub_t = sub.delta, sub.variance, sub.t

local context = plugin("context")
out.ctx_in = context.in_context(m, row, { layer = 2, batch_size = 3 }).acts
out.ctx_spacing = context.spacing(m, { "cat", "dog", "tree", "house", "river", "the" },
                                  { layer = 1, batch_size = 5 }).acts
-- One pass of everything: ranks 1 and 2 have no part and learn the result's shape from rank 0.
out.rep_one_pass = plugin("replace").sweep(m, row, { layers = { 0, 1, 3 }, rates = { 0.2, 0.5, 0.9 },
                                                      batch_size = 9 }).logprob
out.ctx_one_pass = context.spacing(m, { "cat", "dog" }, { layer = 1 }).acts
if dist.is_main() then tensor.save(arg[1], out) end
)lua");
  auto results = results_by_ranks(dir, script);
  ASSERT_EQ(results.size(), 3u);
  for (const int n : {2, 3}) {
    for (const auto& [name, one] : results[1]) {
      const at::Tensor& got = results[n][name];
      ASSERT_TRUE(got.defined()) << name << " missing with " << n << " ranks";
      if (one.is_floating_point()) {
        EXPECT_TRUE(at::allclose(got, one, 1e-9, 1e-12, /*equal_nan=*/true))
            << name << " with " << n << " ranks: max difference "
            << (got - one).abs().nan_to_num(0).max().item<double>();
      } else {
        EXPECT_TRUE(at::equal(got, one)) << name << " with " << n << " ranks";
      }
    }
  }
}

// The two sketches that do not merge exactly: the covariance (Chan's merge, float64
// reassociation) and the quantile sketch (count, min and max exact; each quantile within the
// merged sketch's own error bound of the exact one).
TEST(Job, CovarianceAndQuantileSketchesMergeAcrossRanks) {
  const auto dir = scratch_dir("job_sketches");
  const auto script = write_script(dir, "sketches.lua", R"lua(
tensor.manual_seed(11)
local docs = {}
for d = 1, 17 do docs[d] = tensor.randn({ 6 + d % 3, 5 }) * (1 + d % 4) + (d % 2) * 3 end
local first, last = dist.shard(#docs)
local q, c = stats.quantile_sketch({ bins = 64 }), stats.covariance_stream()
for d = first + 1, last do q:add(docs[d]); c:add(docs[d]) end
q:merge_across_job(); c:merge_across_job()
-- Data on rank 0 only: the others learn the shape, and the merged sketch is rank 0's exactly.
local q0, c0 = stats.quantile_sketch({ bins = 64 }), stats.covariance_stream()
if dist.rank() == 0 then for d = 1, 5 do q0:add(docs[d]); c0:add(docs[d]) end end
q0:merge_across_job(); c0:merge_across_job()
if dist.is_main() then
  tensor.save(arg[1], { all = tensor.cat(docs, 0), median = q:median(), q90 = q:quantile(0.9),
    bound = q:error_bound(), min = q:min(), max = q:max(), count = tensor.new({ q:count() }),
    cov = c:covariance(), ratio = c:explained_variance_ratio(), mean = c:mean(),
    median0 = q0:median(), bound0 = q0:error_bound(), cov0 = c0:covariance() })
end
)lua");
  auto results = results_by_ranks(dir, script);
  ASSERT_EQ(results.size(), 3u);
  const at::Tensor all = results[1]["all"].to(at::kDouble);
  for (const int n : {1, 2, 3}) {
    auto& r = results[n];
    for (const char* close : {"cov", "ratio", "mean"}) {
      EXPECT_TRUE(at::allclose(r[close], results[1][close], 1e-9, 1e-12)) << close << " with " << n;
    }
    EXPECT_EQ(r["count"].item<double>(), static_cast<double>(all.size(0)));
    EXPECT_TRUE(at::equal(r["min"], std::get<0>(all.min(0))));
    EXPECT_TRUE(at::equal(r["max"], std::get<0>(all.max(0))));
    for (const auto& [name, q] : {std::pair<const char*, double>{"median", 0.5}, {"q90", 0.9}}) {
      const at::Tensor exact = at::quantile(all, q, 0);
      EXPECT_TRUE(((r[name] - exact).abs() <= r["bound"] * (1 + 1e-9)).all().item<bool>())
          << name << " with " << n << " ranks: off by " << (r[name] - exact).abs() << " bound "
          << r["bound"];
    }
  }
  for (const int n : {2, 3}) {
    for (const char* exact : {"median0", "bound0", "cov0"}) {
      EXPECT_TRUE(at::equal(results[n][exact], results[1][exact])) << exact << " with " << n;
    }
  }
  // Merging spread grids costs at most half a bin more than one sketch of everything.
  EXPECT_TRUE((results[3]["bound"] <= results[1]["bound"] * 4).all().item<bool>());
}

// A lesson with --nproc 2 (17-02: the t-test selection and its lesions): rank 0 writes the
// report, which says ok, and its data equal one process's.
TEST(Job, ALessonRunsAsAJobWithOneProcesssResults) {
  const auto dir = scratch_dir("job_lesson");
  const OneThreadPerProcess threads;
  for (const int n : {1, 2}) {
    auto run = llmscope({"-q", "lesson", "run", "17-02", "--nproc", std::to_string(n), "--out",
                         (dir / ("n" + std::to_string(n))).string()});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_THAT(read_text_file(dir / ("n" + std::to_string(n)) / "report.html"),
                HasSubstr("<th>status</th><td>ok</td>"));
  }
  EXPECT_EQ(read_text_file(dir / "n2" / "data" / "selected-neurons.csv"),
            read_text_file(dir / "n1" / "data" / "selected-neurons.csv"));
  const auto one = SafetensorsFile::open(dir / "n1" / "data" / "delta.safetensors");
  const auto two = SafetensorsFile::open(dir / "n2" / "data" / "delta.safetensors");
  for (const auto& entry : one.entries()) {
    EXPECT_TRUE(at::allclose(two.tensor(entry.name), one.tensor(entry.name), 1e-9, 1e-12))
        << entry.name;
  }
  EXPECT_TRUE(fs::exists(dir / "n2" / "ranks" / "rank-1.log"));
}

// A progress bar in a job shows the job's progress: rank 0 draws every rank's steps against
// every rank's total (seen on a terminal: `script` gives the job one).
TEST(Job, AProgressBarShowsTheWholeJob) {
  const auto dir = scratch_dir("job_progress");
  const auto script = write_script(dir, "bar.lua", R"lua(
local first, last = dist.shard(40)
local bar = progress.new(last - first, "scan")
for i = first, last - 1 do bar:update() end
dist.barrier()  -- every rank's steps are in before rank 0 draws the end
bar:close()
)lua");
  auto result =
      run_command("script -qec " +
                  shell_quote(shell_quote(LLMSCOPE_CLI) + " run " + shell_quote(script.string()) +
                              " --nproc 2 --out " + shell_quote((dir / "out").string())) +
                  " /dev/null");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The bar's last drawing: both ranks' 20 steps of both ranks' 20.
  const auto last = result.output.rfind("scan [");
  ASSERT_NE(last, std::string::npos) << result.output;
  EXPECT_THAT(result.output.substr(last), HasSubstr("] 40/40 100.0%"));
  EXPECT_THAT(result.output.substr(last), HasSubstr("(job)"));
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

// A rank killed from outside (SIGKILL, as the OOM killer or a node failure would) in the middle
// of a scan: the job stops within the timeout, non-zero, naming the rank, and rank 0's report
// does not say ok.
TEST(Job, ARankKilledMidScanFailsTheJobCleanly) {
  const auto dir = scratch_dir("job_killed");
  const auto marker = dir / "scanning";
  const auto script = write_script(dir, "scan.lua", R"lua(
local m = model.load()
report.text("a scan that never ends")
local ids = (tensor.arange(0, 64) * 7) % m.vocab_size
for step = 1, 1000000 do
  m:forward(ids:view({ 1, 64 }))
  dist.all_reduce(tensor.new({ step }), "sum")
  if step == 3 and dist.rank() == 1 then io.open(arg[1], "w"):close() end
end
)lua");
  const auto started = std::chrono::steady_clock::now();
  ChildProcess job(shell_quote(LLMSCOPE_CLI) + " run " + shell_quote(script.string()) +
                       " --nproc 2 --dist-timeout 60 --out " + shell_quote((dir / "out").string()) +
                       " -- " + shell_quote(marker.string()),
                   dir / "job.log");
  ASSERT_TRUE(job.wait_for([&] { return fs::exists(marker); }, 120)) << job.output();
  // Rank 1 is the launcher's child whose environment says RANK=1.
  pid_t rank1 = -1;
  std::istringstream children(read_text_file("/proc/" + std::to_string(job.pid()) + "/task/" +
                                             std::to_string(job.pid()) + "/children"));
  for (pid_t child = 0; children >> child;) {
    std::string environ = read_text_file("/proc/" + std::to_string(child) + "/environ");
    if (environ.find(std::string("RANK=1") + '\0') != std::string::npos &&
        environ.find(std::string("LOCAL_RANK=1") + '\0') != std::string::npos) {
      rank1 = child;
    }
  }
  ASSERT_GT(rank1, 0) << "rank 1 not found among the launcher's children";
  ::kill(rank1, SIGKILL);
  const int code = job.wait(90);
  EXPECT_EQ(code, 128 + SIGKILL) << job.output();
  // Rank 0 fails too (its collective lost the peer); the cause named is rank 1.
  EXPECT_THAT(job.output(), HasSubstr("rank 1 exited with 137 (killed by signal 9)"));
  EXPECT_THAT(job.output(), HasSubstr("job: failed because rank 1 was killed by signal 9"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
            150.0);  // bounded by the timeouts, not a timing assertion
  // Rank 0 wrote what it completed, marked as not ok.
  const std::string report = read_text_file(dir / "out" / "report.html");
  EXPECT_THAT(report, HasSubstr("a scan that never ends"));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("<th>status</th><td>ok</td>")));
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
