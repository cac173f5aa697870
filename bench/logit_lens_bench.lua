-- Benchmark: the logit_lens plugin (lessons 13-15 to 13-17) against the same lens from Lua: one
-- forward pass with hidden_states, then per hidden state m:unembed, log-softmax, top-k, the KL from
-- the output and the next token's rank, log-probability and z-score. TOKENS tokens of Brown fiction
-- (random ids when the model has no tokenizer), full head. Best of REPEATS, wall time.
--
--   llmscope run bench/logit_lens_bench.lua --model DIR [-- TOKENS REPEATS]
local bench = require("lib.bench")
local n_tokens = tonumber(arg[1] or "64")
local repeats = tonumber(arg[2] or "3")
local m = model.load()
local lens = plugin("logit_lens")
n_tokens = math.min(n_tokens, m.max_positions)

local ids, source = bench.fiction_ids(m, n_tokens)
n_tokens = ids:numel()
local targets = tensor.cat({ ids:narrow(0, 1, n_tokens - 1), ids:narrow(0, 0, 1) }, 0)

local res
local t_plugin = bench.best_of(repeats, function()
  res = lens.lens(m, ids, { full_head = true, k = 5, target = targets })
end)

-- The Lua route, with the same last-row rule (a causal LM's last hidden state is already normalised).
local last = "blocks." .. (m.n_layer - 1) .. ".hook_resid_post"
local lua_rank
local t_lua = bench.best_of(repeats, function()
  local block_out
  local logits_out, out = m:forward(ids:unsqueeze(0), { hidden_states = true,
    hooks = { [last] = function(act) block_out = act:clone() end } })
  local final = logits_out[0]:double():log_softmax(-1)
  local index = targets:unsqueeze(-1)
  lua_rank = {}
  for l = 0, m.n_layer do
    local h = (l == m.n_layer and m.is_causal) and block_out[0] or out.hidden_states[l][0]
    local logits = m:unembed(h):double()
    local lp = logits:log_softmax(-1)
    local _ = lp:topk(5, -1)
    local _ = (final:exp() * (final - lp)):sum(-1)
    local t = logits:gather(-1, index)
    lua_rank[l] = logits:gt(t):sum(-1)
    local _ = lp:gather(-1, index)
    local _ = (t:squeeze(-1) - logits:mean(-1)) / logits:std(-1)
  end
end)
local same = true
for l = 0, m.n_layer do same = same and res.target_rank[l]:eq(lua_rank[l]):all() end

print(("%s, %d tokens (%s), %d hidden states; the same ranks: %s"):format(tostring(m), n_tokens, source,
  m.n_layer + 1, tostring(same)))
print("| work | logit_lens plugin | forward + m:unembed per layer from Lua | speed-up |")
print("|---|---|---|---|")
print(("| lens of every hidden state, full head | %.3f s | %.3f s | %.2fx |"):format(t_plugin, t_lua, t_lua / t_plugin))
