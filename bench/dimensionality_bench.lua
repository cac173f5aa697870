-- Benchmark: the dimensionality plugin (lessons 13-06, 13-07) against the course's method from
-- Lua: one forward pass per row with hidden_states, every hidden state's tokens stacked and
-- centred, then an SVD per hidden state. TOKENS tokens of Brown fiction in rows of SEQ_LEN
-- (capped at the model's context). Best of REPEATS, wall time.
--
--   llmscope run bench/dimensionality_bench.lua --model DIR [-- TOKENS SEQ_LEN REPEATS]
local bench = require("lib.bench")
local n_tokens = tonumber(arg[1] or "4096")
local seq_len = tonumber(arg[2] or "256")
local repeats = tonumber(arg[3] or "3")
local m = model.load()
local dimensionality = plugin("dimensionality")
seq_len = math.min(seq_len, m.max_positions)

local ids, source = bench.fiction_ids(m, n_tokens)
n_tokens = ids:numel()
local rows = ids:narrow(0, 0, (n_tokens // seq_len) * seq_len):reshape({ -1, seq_len })

local plugin_out
local t_plugin = bench.best_of(repeats, function()
  plugin_out = dimensionality.spectrum(m, rows, { batch_size = 8 })
end)
local lua_shares
local t_lua = bench.best_of(repeats, function()
  local per = {}
  for r = 0, rows:size(0) - 1 do
    local _, out = m:forward(rows[r]:unsqueeze(0), { hidden_states = true })
    for l = 0, m.n_layer do
      per[l] = per[l] or {}
      per[l][#per[l] + 1] = out.hidden_states[l][0]
    end
  end
  lua_shares = {}
  for l = 0, m.n_layer do
    local x = tensor.cat(per[l], 0):double()
    local _, s = (x - x:mean(0)):svd()
    lua_shares[l] = s * s / (s * s):sum()
  end
end)
local k = math.min(plugin_out.max_components, m.d_model)
local worst = 0
for l = 0, m.n_layer do
  worst = math.max(worst, (plugin_out.explained[l]:narrow(0, 0, k) - lua_shares[l]:narrow(0, 0, k)):abs():max():item())
end

print(("%s, %d tokens (%s) in rows of %d, %d hidden states; max |difference| of the spectra %.2g"):format(
  tostring(m), rows:numel(), source, seq_len, m.n_layer + 1, worst))
print("| work | dimensionality plugin | one pass per row + SVD from Lua | speed-up |")
print("|---|---|---|---|")
print(("| spectrum of every hidden state | %.3f s | %.3f s | %.1fx |"):format(t_plugin, t_lua, t_lua / t_plugin))
