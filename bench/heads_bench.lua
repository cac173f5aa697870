-- Benchmark: the heads plugin (lessons 16-01 to 16-03): every layer x head zeroed (144 on GPT-2
-- small's shape), batched BATCH_SIZE ablations per pass, against one pass per ablation with a Lua
-- hook on attn.hook_z (the course's loop). A 12-token prompt. Best of REPEATS, wall time.
--
--   llmscope run bench/heads_bench.lua --model DIR [-- BATCH_SIZE REPEATS]
local bench = require("lib.bench")
local batch_size = tonumber(arg[1] or "16")
local repeats = tonumber(arg[2] or "3")
local m = model.load()
local heads = plugin("heads")
local ids = bench.fiction_ids(m, 12)

local r
local t_plugin = bench.best_of(repeats, function() r = heads.ablate(m, ids, { batch_size = batch_size }) end)
local n_head = r.n_head
local lua_lp = {}
local target = r.targets[0]:item()
local t_lua = bench.best_of(repeats, function()
  for l = 0, m.n_layer - 1 do
    for h = 0, n_head - 1 do
      local logits = m:forward(ids:unsqueeze(0), { hooks = { [("blocks.%d.attn.hook_z"):format(l)] = function(z)
        local out = z:clone()
        out:select(2, h):zero_()
        return out
      end } })
      lua_lp[l * n_head + h + 1] = logits[0][-1]:double():log_softmax(-1)[target]:item()
    end
  end
end)
local worst = 0
for l = 0, m.n_layer - 1 do
  for h = 0, n_head - 1 do worst = math.max(worst, math.abs(lua_lp[l * n_head + h + 1] - r.logprobs[l][h][0]:item())) end
end
print(("%s, %d tokens, %d ablations (%d per pass); max |difference| %.2g"):format(tostring(m), ids:numel(),
  m.n_layer * n_head, batch_size, worst))
print("| work | heads plugin | one pass per ablation with a Lua hook | speed-up |")
print("|---|---|---|---|")
print(("| every layer × head zeroed | %.3f s | %.3f s | %.1fx |"):format(t_plugin, t_lua, t_lua / t_plugin))
