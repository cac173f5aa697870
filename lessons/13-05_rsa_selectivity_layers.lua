-- lesson: 13-05 CC: Laminar profile of RSA and category selectivity
-- Lesson 13-04 at every layer and for Q, K and V: how category selectivity and the agreement
-- between the three matrices' similarity structures (RSA) change with depth.
local lesson = require("lib.lesson")
local setup = require("lib.similarity_setup")

local L = lesson.start {
  id = "13-05",
  title = "CC: Laminar profile of RSA and category selectivity",
  course = "part5_layer_CClayerGroupingRSA (video 212), GPT-2 large (36 layers), Q, K and V of every layer",
  options = {
    words = "semantic_groups.txt",
    context = "I was thinking about the {word}",
  },
  summary = "The 34 words of lesson 13-04 in the same context; the `similarity` plugin reads Q, K and V at the " ..
    "word's last token at every layer (one batched pass per matrix). Per layer and matrix: the 34 × 34 cosine " ..
    "matrix, its category selectivity (`stats.selectivity`, batched over layers), and RSA between the matrices " ..
    "(`stats.rsa` over the stack of layers: Q–K, Q–V, K–V, Pearson's r).",
}
local m = L.model
local W = setup.word_groups(L, m, L.opts.words, L.opts.context)
local label_tensor = W.labels
local layers = {}
for l = 0, m.n_layer - 1 do layers[#layers + 1] = l end
local qkv = setup.qkv(m, W, layers)
local n_layer = m.n_layer

-- [layers, words, words] cosine matrices per matrix type.
local S = {}
for _, key in ipairs({ "q", "k", "v" }) do
  local per = {}
  for l = 0, n_layer - 1 do per[#per + 1] = stats.cosine_matrix(qkv[key][l]):double() end
  S[key] = tensor.stack(per)
end
local sel = { q = stats.selectivity(S.q, label_tensor), k = stats.selectivity(S.k, label_tensor),
  v = stats.selectivity(S.v, label_tensor) }
local rsa = { QK = stats.rsa(S.q, S.k, { method = "pearson" }), QV = stats.rsa(S.q, S.v, { method = "pearson" }),
  KV = stats.rsa(S.k, S.v, { method = "pearson" }) }

local x = tensor.arange(n_layer)
report.figure(figure.line {
  x = x, markers = true,
  series = { { y = rsa.QK.r, label = "Q vs K" }, { y = rsa.QV.r, label = "Q vs V" }, { y = rsa.KV.r, label = "K vs V" } },
  title = "RSA between the matrices' similarity structures", xlabel = "layer", ylabel = "Pearson r",
}, { name = "rsa_per_layer", caption = "Correlation of two 34 × 34 cosine matrices' entries above the diagonal." })
report.figure(figure.line {
  x = x, markers = true,
  series = { { y = sel.q.ratio, label = "Q" }, { y = sel.k.ratio, label = "K" }, { y = sel.v.ratio, label = "V" },
    { y = tensor.ones({ n_layer }), label = "no selectivity", dashed = true, color = "#888888" } },
  title = "Category selectivity (within / between)", xlabel = "layer", ylabel = "selectivity",
}, { name = "selectivity_per_layer", caption = "Above 1: words of one category are more alike than words of " ..
  "different categories." })
local rows = {}
for l = 0, n_layer - 1 do
  rows[#rows + 1] = { l, rsa.QK.r[l]:item(), rsa.QV.r[l]:item(), rsa.KV.r[l]:item(), sel.q.ratio[l]:item(),
    sel.k.ratio[l]:item(), sel.v.ratio[l]:item() }
end
report.table("Per layer", { columns = { "layer", "RSA Q–K", "RSA Q–V", "RSA K–V", "selectivity Q", "selectivity K",
  "selectivity V" }, rows = rows })

L:finding("RSA (Q vs K) across layers", "0.84 → 0.96", ("%s → %s (range %s to %s)"):format(
  lesson.fmt(rsa.QK.r[0]:item()), lesson.fmt(rsa.QK.r[n_layer - 1]:item()), lesson.fmt(rsa.QK.r:min():item()),
  lesson.fmt(rsa.QK.r:max():item())))
local best = {}
for _, key in ipairs({ "q", "k", "v" }) do
  best[#best + 1] = ("%s %s–%s (peak at layer %d)"):format(key:upper(), lesson.fmt(sel[key].ratio:min():item()),
    lesson.fmt(sel[key].ratio:max():item()), sel[key].ratio:argmax():item())
end
L:finding("selectivity varies by matrix and layer", "yes", table.concat(best, "; "))

-- Checks: the batched statistics equal one layer computed alone.
local mid = n_layer // 2
local one = stats.rsa(S.q[mid], S.k[mid], { method = "pearson" }).r:item()
L:check(("batched RSA equals layer %d alone (1e-12)"):format(mid), math.abs(one - rsa.QK.r[mid]:item()) < 1e-12)
local alone = stats.selectivity(S.v[mid], label_tensor).ratio:item()
L:check(("batched selectivity equals layer %d alone (1e-12)"):format(mid),
  math.abs(alone - sel.v.ratio[mid]:item()) < 1e-12)
L:finish()
