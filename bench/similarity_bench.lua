-- Benchmark: the similarity plugin (lessons 13-01 to 13-05) against the course's method from Lua:
-- one pass per sentence with run_with_cache on every layer's attn.hook_q/k/v, the target's vector
-- picked out of each. The 54 "her" sentences of lessons/data/him_her_pairs.txt, every layer, Q, K
-- and V. Best of REPEATS, wall time.
--
--   llmscope run bench/similarity_bench.lua --model DIR [-- REPEATS BATCH_SIZE]
local bench = require("lib.bench")
local repeats = tonumber(arg[1] or "3")
local batch_size = tonumber(arg[2] or "8")
local m = model.load()
local sim = plugin("similarity")

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "bench"
local sentences = {}
for line in io.lines(here .. "/../lessons/data/him_her_pairs.txt") do
  local her = line:match("^[^#][^\t]*\t(.+)$")
  if her then sentences[#sentences + 1] = her end
end
local word = m.is_causal and " her" or "her"
local positions = m:find_tokens(sentences, word)   -- one " her" per sentence
local layers, names = {}, {}
for l = 0, m.n_layer - 1 do
  layers[#layers + 1] = l
  for _, name in ipairs({ "q", "k", "v" }) do names[#names + 1] = ("blocks.%d.attn.hook_%s"):format(l, name) end
end

local plugin_out = {}
local t_plugin = bench.best_of(repeats, function()
  for _, name in ipairs({ "q", "k", "v" }) do
    plugin_out[name] = sim.vectors(m, sentences, { positions = positions, sites = "blocks.{L}.attn.hook_" .. name,
      layers = layers, batch_size = batch_size }).vectors
  end
end)

local lua_out = {}
local t_lua = bench.best_of(repeats, function()
  local per = { q = {}, k = {}, v = {} }
  for i, s in ipairs(sentences) do
    local _, cache = m:run_with_cache(m:tokenize(s):unsqueeze(0), { names = names })
    local p = positions[i - 1]:item()
    for name, list in pairs(per) do
      local layer_vectors = {}
      for l = 0, m.n_layer - 1 do
        layer_vectors[l + 1] = cache[("blocks.%d.attn.hook_%s"):format(l, name)][0][p]:flatten()
      end
      list[i] = tensor.stack(layer_vectors)
    end
  end
  for name, list in pairs(per) do lua_out[name] = tensor.stack(list, 1) end   -- [layers, sentences, units]
end)
local worst = 0
for _, name in ipairs({ "q", "k", "v" }) do
  worst = math.max(worst, (plugin_out[name] - lua_out[name]:float()):abs():max():item())
end

print(("%s, %d sentences, Q, K and V of %d layers; max |difference| %.2g"):format(tostring(m), #sentences,
  m.n_layer, worst))
print("| work | similarity plugin | one run_with_cache per sentence from Lua | speed-up |")
print("|---|---|---|---|")
print(("| target's Q, K, V at every layer | %.3f s | %.3f s | %.1fx |"):format(t_plugin, t_lua, t_lua / t_plugin))
