-- lesson: 13-03 CC: Token-related similarities across layers
-- Lessons 13-01 and 13-02 at every layer: the QQ, KK, VV, QK, QV and KV cosine similarities of
-- the target token between sentences, and how much its vectors vary across sentences, from the
-- first layer to the last.
local lesson = require("lib.lesson")
local setup = require("lib.similarity_setup")

local L = lesson.start {
  id = "13-03",
  title = "CC: Token-related similarities across layers",
  course = "part5_layer_CCcossimsQKVlayers (video 210), GPT-2 XL (48 layers), 54 sentences with \" her\"",
  options = {
    word = "her",
    pairs = "him_her_pairs.txt",
  },
  summary = "The `similarity` plugin reads the target's Q, K and V at every layer in one batched pass per matrix " ..
    "(hooks at all layers, only the target's vectors kept). Per layer: the mean cosine similarity between " ..
    "sentences for QQ, KK and VV (pairs above the diagonal) and QK, QV and KV (sentence i's first matrix " ..
    "against sentence j's second, i ≠ j), their distributions, and the target's variance across sentences " ..
    "(per dimension, averaged over dimensions) relative to its mean squared size.",
}
local m = L.model
local _, her_sentences = L:data_pairs(L.opts.pairs)
local word = lesson.mid_sentence(m, L.opts.word)
local T = setup.targets(m, her_sentences, word)
local layers = {}
for l = 0, m.n_layer - 1 do layers[#layers + 1] = l end
local qkv = setup.qkv(m, T, layers)
local n_layer = m.n_layer

local comparisons = { { "QQ", "q", "q" }, { "KK", "k", "k" }, { "VV", "v", "v" }, { "QK", "q", "k" },
  { "QV", "q", "v" }, { "KV", "k", "v" } }
local mean = {}
local qq_hist = {}
local edges = tensor.linspace(-1, 1, 41)
for _, c in ipairs(comparisons) do mean[c[1]] = tensor.zeros({ n_layer }, { dtype = "float64" }) end
local variance = { q = tensor.zeros({ n_layer }, { dtype = "float64" }), k = tensor.zeros({ n_layer }, { dtype = "float64" }),
  v = tensor.zeros({ n_layer }, { dtype = "float64" }) }
for l = 0, n_layer - 1 do
  for _, c in ipairs(comparisons) do
    local cos = setup.pairs(qkv[c[2]][l], qkv[c[3]][l], "cosine", c[2] == c[3])
    mean[c[1]][l] = setup.mean(cos)
    if c[1] == "QQ" then qq_hist[#qq_hist + 1] = stats.histogram(cos, edges, { density = true }) end
  end
  for key, v in pairs(variance) do
    local x = qkv[key][l]:double()                 -- [sentences, units]
    v[l] = x:var(0):mean():item() / (x * x):mean():item()
  end
end

local x = tensor.arange(n_layer)
local series = {}
for _, c in ipairs(comparisons) do series[#series + 1] = { y = mean[c[1]], label = c[1] } end
report.figure(figure.line {
  x = x, series = series, markers = true, title = ("Mean cosine similarity of %q between sentences"):format(word),
  xlabel = "layer", ylabel = "mean cosine", ylim = { -1, 1 },
}, { name = "mean_cosine_per_layer", caption = "QQ, KK, VV: one sentence's vector against another's; QK, QV, KV: " ..
  "sentence i's first matrix against sentence j's second." })
report.figure(figure.heatmap {
  values = tensor.stack(qq_hist), ylabels = (function()
    local t = {}
    for l = 0, n_layer - 1 do t[#t + 1] = tostring(l) end
    return t
  end)(),
  title = "QQ cosine similarity: distribution per layer", xlabel = "cosine bin (−1 to 1, 40 bins)", ylabel = "layer",
  colorbar_label = "density",
}, { name = "qq_histograms", caption = "Each row is one layer's histogram of the QQ similarities." })
report.figure(figure.line {
  x = x, markers = true, series = { { y = variance.q, label = "Q" }, { y = variance.k, label = "K" },
    { y = variance.v, label = "V" } },
  title = ("Variance of %q across sentences"):format(word), xlabel = "layer",
  ylabel = "variance / mean square",
}, { name = "variance_per_layer", caption = "Per dimension across sentences, averaged over dimensions, over the " ..
  "vectors' mean square: 0 when every sentence gives the same vector." })

local rows = {}
for l = 0, n_layer - 1 do
  local row = { l }
  for _, c in ipairs(comparisons) do row[#row + 1] = mean[c[1]][l]:item() end
  row[#row + 1] = variance.q[l]:item()
  rows[#rows + 1] = row
end
report.table("Per layer", { columns = { "layer", "QQ", "KK", "VV", "QK", "QV", "KV", "Q variance ratio" }, rows = rows })

-- What the course reads from this: the vectors move from encoding the current token (alike
-- across sentences) to a context-dependent next-token prediction (less alike).
local first, last = mean.QQ[0]:item(), mean.QQ[n_layer - 1]:item()
local drop = mean.QQ:narrow(0, 0, n_layer - 1) - mean.QQ:narrow(0, 1, n_layer - 1)
local steepest = drop:argmax():item()
L:finding("vectors transition from the current token to a next-token prediction", "(read from the histograms)",
  ("mean QQ cosine %s at layer 0, %s at layer %d (%s); steepest drop from layer %d to %d; Q variance ratio %s → %s")
    :format(lesson.fmt(first), lesson.fmt(last), n_layer - 1, last < first and "lower at the last layer" or
      "not lower at the last layer", steepest, steepest + 1,
      lesson.fmt(variance.q[0]:item()), lesson.fmt(variance.q[n_layer - 1]:item())))

-- Check one layer against a direct pass; every histogram integrates to 1.
local mid = n_layer // 2
local site = ("blocks.%d.attn.hook_v"):format(mid)
local _, cache = m:run_with_cache(m:tokenize(her_sentences[2]):unsqueeze(0), { names = site })
local direct = cache[site][0][T.positions[1]:item()]:flatten():float()
local heads = direct:numel() // qkv.shape[2]
local group = qkv.shape[1] // heads
local from_plugin = qkv.v[mid][1]:reshape({ heads, group, qkv.shape[2] }):select(1, 0):flatten()
local diff = (direct - from_plugin):abs():max():item()
L:check(("the plugin's V of sentence 2 at layer %d is the hook's activation (1e-5)"):format(mid), diff < 1e-5,
  lesson.fmt(diff))
local area = (tensor.stack(qq_hist):sum(1) * (2 / 40) - 1):abs():max():item()
L:check("every QQ histogram integrates to 1 (1e-6)", area < 1e-6, lesson.fmt(area))
L:finish()
