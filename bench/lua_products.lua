-- Benchmark: a researcher's own products from Lua with element-wise work between them (issue 22):
-- ROUNDS rounds of h:matmul(w):gelu("tanh") and h:matmul(w2):layer_norm on a [ROWS, 768]
-- activation by GPT-2-small-shaped MLP weights ([768, 3072] and [3072, 768]); best of REPEATS,
-- wall and CPU time. t:matmul runs its products on ATen's threads with the BLAS held to one
-- (llmscope::matmul), so the GELU and layer norm between them do not contend with the BLAS's own
-- threads for the cores.
--
--   llmscope run bench/lua_products.lua -- [--rows 512] [--rounds 6] [--repeats 5]
local bench = require("lib.bench")
local opts = bench.options({ rows = 512, rounds = 6, repeats = 5 })
local x = tensor.randn({ opts.rows, 768 }, { seed = 0 })
local w = tensor.randn({ 768, 3072 }, { seed = 1 }) * 0.02
local w2 = tensor.randn({ 3072, 768 }, { seed = 2 }) * 0.02
local function rounds()
  local h = x
  for _ = 1, opts.rounds do
    h = h:matmul(w):gelu("tanh")
    h = h:matmul(w2):layer_norm({ 768 })
  end
  return h
end
rounds()  -- first use: the BLAS's probe, the heap's pages
local wall, cpu = bench.best_of(opts.repeats, rounds)
local flops = 2 * 2 * opts.rows * 768 * 3072 * opts.rounds
print(("%d rounds of [%d, 768] products: %.1f ms wall, %.1f ms CPU, %.0f GFLOP/s"):format(
  opts.rounds, opts.rows, wall * 1000, cpu * 1000, flops / wall / 1e9))
