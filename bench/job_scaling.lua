-- Benchmark: a token_length corpus scan as a job of N processes (issue 20). Run it with
-- --nproc 1, 2, ... on the same model and tokens and compare the scan's wall time: each rank
-- scans its share of the rows, then the ranks merge (docs/distributed.md).
--
--   llmscope run bench/job_scaling.lua --nproc N [--model DIR] -- [--tokens 32768] [--repeats 3]
local bench = require("lib.bench")
local opts = bench.options({ tokens = 32768, repeats = 3 })
local m = model.load()
local tl = plugin("token_length")
local ids = m:tokenize(corpus.brown():text():sub(1, 8 * opts.tokens))
local n = math.min(opts.tokens, ids:size(0))
local best = math.huge
for _ = 1, opts.repeats do
  dist.barrier()
  local r = tl.scan(m, ids, { tokens = n, seq_len = math.min(256, m.max_positions) })
  best = math.min(best, r.seconds)
end
if dist.is_main() then
  local line = string.format("token_length scan, %d tokens, %d process(es): %.3f s (best of %d), %.0f tokens/s",
    n, dist.world_size(), best, opts.repeats, n / best)
  print(line)
  report.text(line)
end
