-- lesson: 13-02 Token-related similarities within and across Q, K, V (part 2)
-- The distributions behind lesson 13-01: Q-Q, K-K, Q-K and K-V cosine similarities between
-- sentences, for the target token, for other tokens, and for a control that shuffles each
-- vector's dimensions; and why cosine similarity and correlation differ.
local lesson = require("lib.lesson")
local setup = require("lib.similarity_setup")

local L = lesson.start {
  id = "13-02",
  title = "Token-related similarities within and across Q, K, V (part 2)",
  course = "part5_layer_cossimsQKV (video 209), GPT-2 small, attn.c_attn of layer 6, 54 sentences with \" her\"",
  options = {
    layer = -1,     -- -1: the course's layer 6 of 12 at the same relative depth
    word = "her",
    pairs = "him_her_pairs.txt",
    seed = 2,       -- the other token per sentence and the shuffling
  },
  summary = "The target's Q, K and V in every sentence come from the `similarity` plugin as in 13-01. QQ and KK " ..
    "compare one sentence's vector with another's (the pairs above the diagonal); QK and KV compare sentence " ..
    "i's Q (or K) with sentence j's K (or V) for every i ≠ j. The same is done for one other token per " ..
    "sentence, and for the target's vectors with their dimensions shuffled independently (seeded), which keeps " ..
    "each vector's values and destroys the correspondence between dimensions.",
}
local m = L.model
local _, her_sentences = L:data_pairs(L.opts.pairs)
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(6, 12)
local word = lesson.mid_sentence(m, L.opts.word)
local T = setup.targets(m, her_sentences, word)
local qkv = setup.qkv(m, T, { layer }, { others = true })
local n = #her_sentences
local sets = {
  target = { q = qkv.q[0], k = qkv.k[0], v = qkv.v[0] },
  other = {},
  shuffled = {},
}
for i, key in ipairs({ "q", "k", "v" }) do
  sets.other[key] = setup.one_other_per_row(qkv[key .. "_other"], qkv.other_rows, n, L.opts.seed)[0]
  sets.shuffled[key] = setup.shuffle_dims(sets.target[key], L.opts.seed + i)
end
local comparisons = { { "QQ", "q", "q" }, { "KK", "k", "k" }, { "QK", "q", "k" }, { "KV", "k", "v" } }
local labels = { target = ("target %q"):format(word), other = "other tokens", shuffled = "target, dimensions shuffled" }

local rows, means = {}, {}
for _, c in ipairs(comparisons) do
  local name, a, b = c[1], c[2], c[3]
  local series = {}
  means[name] = {}
  for _, set in ipairs({ "target", "other", "shuffled" }) do
    local s = sets[set]
    local cos = setup.pairs(s[a], s[b], "cosine", a == b)
    local corr = setup.pairs(s[a], s[b], "correlation", a == b)
    series[#series + 1] = { values = cos, label = labels[set] }
    means[name][set] = setup.mean(cos)
    rows[#rows + 1] = { name, labels[set], setup.mean(cos), cos:std():item(), cos:abs():gt(0.5):double():mean():item(),
      setup.mean(corr) }
  end
  report.figure(figure.histogram {
    series = series, edges = tensor.linspace(-1, 1, 81), density = true,
    title = ("%s cosine similarity between sentences, layer %d"):format(name, layer),
    xlabel = "cosine similarity", ylabel = "density",
  }, { name = "hist_" .. name, caption = ("%s: %s."):format(name, a == b and
    "one sentence's vector against another's" or "sentence i's first matrix against sentence j's second, i ≠ j") })
end
report.table("Distributions of the similarities", {
  columns = { "comparison", "vectors", "mean cosine", "sd", "share |cosine| > 0.5", "mean correlation" },
  rows = rows,
})

-- Cosine vs correlation: correlation removes each vector's own mean over its dimensions; where
-- that mean is large next to the spread, the two disagree.
local offset_rows = {}
for _, key in ipairs({ "q", "k", "v" }) do
  local x = sets.target[key]:double()
  local mean_abs = x:mean(1):abs():mean():item()
  local sd = x:std(1):mean():item()
  offset_rows[#offset_rows + 1] = { key:upper(), mean_abs, sd, mean_abs / sd }
end
report.table("Each vector's mean over its dimensions (the offset correlation removes)", {
  columns = { "matrix", "mean |vector mean|", "mean sd over dimensions", "ratio" },
  rows = offset_rows,
})

local qq, kk = means.QQ.target, means.KK.target
L:finding("QQ and KK similarities of the target are concentrated near 1", "near ±1",
  ("mean cosine QQ %s, KK %s (shuffled control: %s, %s)"):format(lesson.fmt(qq), lesson.fmt(kk),
    lesson.fmt(means.QQ.shuffled), lesson.fmt(means.KK.shuffled)))
L:finding("Q and K are more similar to each other (in magnitude) than K and V", "|QK| > |KV|",
  ("mean cosine QK %s, KV %s"):format(lesson.fmt(means.QK.target), lesson.fmt(means.KV.target)))
local largest_gap = 0
for _, r in ipairs(rows) do largest_gap = math.max(largest_gap, math.abs(r[3] - r[6])) end
L:finding("cosine ≠ correlation because of mean offsets", "they differ",
  ("largest |mean cosine − mean correlation| %s; offset/sd ratios Q %s, K %s, V %s"):format(lesson.fmt(largest_gap),
    lesson.fmt(offset_rows[1][4]), lesson.fmt(offset_rows[2][4]), lesson.fmt(offset_rows[3][4])))

-- Checks: the shuffle keeps every vector's values; QQ's pairs are the upper triangle in Lua.
local kept = (sets.shuffled.q:sort(1) - sets.target.q:sort(1)):abs():max():item()
L:check("the shuffled control keeps each vector's values", kept == 0, lesson.fmt(kept))
local x = sets.target.q:double()
local unit = x / x:norm(2, 1, true)
local by_hand = unit:matmul(unit:t())
local pairs_qq = setup.pairs(sets.target.q, sets.target.q, "cosine", true)
local off_diagonal = (by_hand * tensor.eye(n):eq(0):double()):sum():item()
local diff = math.abs(setup.mean(pairs_qq) - off_diagonal / (n * (n - 1)))
L:check("mean QQ cosine equals the mean off-diagonal of Q Qᵀ over the norms (1e-6)", diff < 1e-6, lesson.fmt(diff))
L:check(("QQ has n(n−1)/2 = %d pairs, QK n(n−1) = %d"):format(n * (n - 1) // 2, n * (n - 1)),
  pairs_qq:numel() == n * (n - 1) // 2 and setup.pairs(sets.target.q, sets.target.k, "cosine", false):numel() ==
    n * (n - 1))
L:finish()
