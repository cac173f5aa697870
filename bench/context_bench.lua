-- Benchmark: the context plugin (lesson 12-10) against the same work from Lua, one run_with_cache
-- per sequence: `spacing` on the 100 nouns of lessons/data/nouns.txt with and without a space, and
-- `in_context` on a sampled 200-token passage (shorter when the model's context is). Best of 3,
-- wall time.
--
--   llmscope run bench/context_bench.lua --model DIR [-- REPEATS]
local bench = require("lib.bench")
local repeats = tonumber(arg[1] or "3")
local m = model.load()
local context = plugin("context")
local layer = m.n_layer * 2 // 3
local site = "blocks." .. layer .. ".mlp.hook_pre"

local function best(fn) return (bench.best_of(repeats, fn)) end   -- wall seconds

local words = {}
for line in io.lines(arg[0]:gsub("[^/]+$", "") .. "../lessons/data/nouns.txt") do
  if line ~= "" and not line:match("^#") then words[#words + 1] = line end
end
local prompt = "I think the world could be better if"
local new = math.min(200, m.max_positions) - m:tokenize(prompt):numel()
local ids = m:generate(prompt, { max_new_tokens = new, greedy = false, seed = 1 })[0]

local function cached(input)
  local _, cache = m:run_with_cache(input, { names = site, stop_at_layer = layer + 1 })
  return cache[site][0]
end
local t_spacing = best(function() context.spacing(m, words, { layer = layer }) end)
local t_spacing_loop = best(function()
  for _, w in ipairs(words) do
    local _ = cached(w):mean(0)
    _ = cached(" " .. w):mean(0)
  end
end)
local t_context = best(function() context.in_context(m, ids, { layer = layer }) end)
local t_context_loop = best(function()
  local _ = cached(ids)
  for p = 0, ids:numel() - 1 do _ = cached(ids:narrow(0, p, 1))[0] end
end)

print(("%s, block %d, %d words, %d tokens"):format(tostring(m), layer, #words, ids:numel()))
print("| work | context plugin | one pass per sequence from Lua | speed-up |")
print("|---|---|---|---|")
print(("| spacing | %.3f s | %.3f s | %.1fx |"):format(t_spacing, t_spacing_loop, t_spacing_loop / t_spacing))
print(("| in_context | %.3f s | %.3f s | %.1fx |"):format(t_context, t_context_loop, t_context_loop / t_context))
