-- Benchmark: the patch plugin (lessons 15-05, 16-06, 16-07): activation patching of the residual
-- stream at every layer x position of an IOI sentence pair, batched BATCH_SIZE patches per pass,
-- against one pass per patch with a Lua hook (the course's loop); and attribution patching (one
-- forward and one backward pass) against the exact, batched patching. Best of REPEATS, wall time.
--
--   llmscope run bench/patch_bench.lua --model DIR [-- BATCH_SIZE REPEATS]
local bench = require("lib.bench")
local batch_size = tonumber(arg[1] or "16")
local repeats = tonumber(arg[2] or "3")
local m = model.load()
local patch = plugin("patch")
local clean = m:tokenize("When John and Mary went to the park, John gave a gift to")
local corrupted = m:tokenize("When John and Mary went to the park, Mary gave a gift to")
local a, b = m:tokenize(" Mary")[0]:item(), m:tokenize(" John")[0]:item()
local opts = { metric = { a, b }, sites = "blocks.{L}.hook_resid_pre", batch_size = batch_size }

local exact
local t_plugin = bench.best_of(repeats, function() exact = patch.activation(m, clean, corrupted, opts) end)
opts.batch_size = nil
local attributed
local t_attr = bench.best_of(repeats, function() attributed = patch.attribution(m, clean, corrupted, opts) end)
local n = clean:numel()
local lua_metric = {}
local t_lua = bench.best_of(repeats, function()
  local _, cache = m:run_with_cache(clean:unsqueeze(0), { names = "blocks.*.hook_resid_pre" })
  for l = 0, m.n_layer - 1 do
    local site = ("blocks.%d.hook_resid_pre"):format(l)
    for p = 0, n - 1 do
      local logits = m:forward(corrupted:unsqueeze(0), { hooks = { [site] = function(x)
        local out = x:clone()
        out[0][p]:copy(cache[site][0][p])
        return out
      end } })
      local row = logits[0][-1]:double()
      lua_metric[l * n + p + 1] = row[a]:item() - row[b]:item()
    end
  end
end)
local worst = 0
for l = 0, m.n_layer - 1 do
  for p = 0, n - 1 do worst = math.max(worst, math.abs(lua_metric[l * n + p + 1] - exact.metric[l][p]:item())) end
end
local r = stats.pearson(exact.normalized:flatten():unsqueeze(1), attributed.normalized:flatten()):item()
print(("%s, %d tokens, %d patches (%d per pass); max |difference| %.2g; attribution vs exact r = %.3f"):format(
  tostring(m), n, m.n_layer * n, batch_size, worst, r))
print("| work | patch plugin | from Lua | speed-up |")
print("|---|---|---|---|")
print(("| exact patching, every layer × position | %.3f s | %.3f s (one pass per patch) | %.1fx |"):format(t_plugin,
  t_lua, t_lua / t_plugin))
print(("| attribution patching vs exact (both the plugin) | %.3f s | %.3f s (exact) | %.1fx |"):format(t_attr,
  t_plugin, t_plugin / t_attr))
