-- lesson: 13-01 Token-related similarities within and across Q, K, V (part 1)
-- One token in 54 different sentences: how alike are its query, key and value vectors from one
-- sentence to the next? Cosine-similarity and correlation matrices of the target's Q, K and V
-- across sentences at one layer, next to the same for other tokens.
local lesson = require("lib.lesson")
local setup = require("lib.similarity_setup")

local L = lesson.start {
  id = "13-01",
  title = "Token-related similarities within and across Q, K, V (part 1)",
  course = "part5_layer_cossimsQKV (video 208), GPT-2 small, attn.c_attn of layer 6, 54 sentences with \" her\"",
  options = {
    layer = -1,     -- -1: the course's layer 6 of 12 at the same relative depth
    word = "her",
    pairs = "him_her_pairs.txt",   -- lessons/data: the second column holds the sentences with "her"
    seed = 1,       -- which other token of each sentence is the non-target reference
  },
  summary = "The course hooks `attn.c_attn` and splits its 2304 outputs into Q, K and V; here the `similarity` " ..
    "plugin reads `blocks.L.attn.hook_q`, `hook_k` and `hook_v` (the same numbers, per head) at the target's " ..
    "position in every sentence, in one batched pass per matrix, and keeps only those vectors. Cosine similarity " ..
    "(`stats.cosine_matrix`) and Pearson correlation (`stats.correlation_matrix`, the cosine after centring each " ..
    "vector) are computed between sentences. The reference is one other token per sentence (a random one), " ..
    "a set of the same size in which the tokens differ.",
}
local m = L.model
local _, her_sentences = L:data_pairs(L.opts.pairs)
report.text(("Substitution: the course's 54 sentences are in its notebook, which this project cannot reach; this " ..
  "run uses the %d \"her\" sentences of `lessons/data/%s` (our own)."):format(#her_sentences, L.opts.pairs))
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(6, 12)
local word = lesson.mid_sentence(m, L.opts.word)
local T = setup.targets(m, her_sentences, word)
local qkv = setup.qkv(m, T, { layer }, { others = true })
local n = #her_sentences

local names = { q = "Q", k = "K", v = "V" }
local rows, mean_r = {}, {}
for _, key in ipairs({ "q", "k", "v" }) do
  local x = qkv[key][0]                                           -- [n, units]
  local other = setup.one_other_per_row(qkv[key .. "_other"], qkv.other_rows, n, L.opts.seed)[0]
  local cos, corr = stats.cosine_matrix(x):double(), stats.correlation_matrix(x)
  report.figure(figure.heatmap {
    values = cos, vmin = -1, vmax = 1, palette = "diverging",
    title = ("Cosine similarity of %q's %s across sentences, layer %d"):format(word, names[key], layer),
    xlabel = "sentence", ylabel = "sentence", colorbar_label = "cosine",
  }, { name = "cosine_" .. key, caption = ("%d × %d: sentence i's %s against sentence j's."):format(n, n, names[key]) })
  local up_cos, up_corr = stats.upper_triangle(cos), stats.upper_triangle(corr)
  local o_cos = stats.upper_triangle(stats.cosine_matrix(other):double())
  local o_corr = stats.upper_triangle(stats.correlation_matrix(other))
  mean_r[key] = setup.mean(up_corr)
  rows[#rows + 1] = { names[key], setup.mean(up_cos), up_cos:min():item(), setup.mean(up_corr),
    setup.mean(o_cos), setup.mean(o_corr) }
end
report.table(("Mean similarity between sentences (%d pairs), layer %d"):format(n * (n - 1) // 2, layer), {
  columns = { "matrix", "target: mean cosine", "target: min cosine", "target: mean r", "other tokens: mean cosine",
    "other tokens: mean r" },
  rows = rows,
})
report.text(("Each sentence gives one vector per matrix: %d sentences × %d units (%d heads × %d), where the " ..
  "course keeps every token of every sentence ([54 × 8 × 2304] for Q, K and V together)."):format(n,
  qkv.q:size(2), qkv.shape[1], qkv.shape[2]))

L:finding("the same token gives highly similar vectors across sentences (r > 0.9)", "r > 0.9",
  ("mean r: Q %s, K %s, V %s (other tokens: %s, %s, %s)"):format(lesson.fmt(mean_r.q), lesson.fmt(mean_r.k),
    lesson.fmt(mean_r.v), lesson.fmt(rows[1][6]), lesson.fmt(rows[2][6]), lesson.fmt(rows[3][6])))

-- Cross-checks: the plugin's vectors are the hook's activation at the target; correlation is the
-- cosine of the centred vectors.
local site = ("blocks.%d.attn.hook_q"):format(layer)
local _, cache = m:run_with_cache(m:tokenize(her_sentences[1]):unsqueeze(0), { names = site })
local direct = cache[site][0][T.positions[0]:item()]:flatten():float()
local diff = (direct - qkv.q[0][0]):abs():max():item()
-- A batch of padded rows and one row alone differ by float32 rounding only.
L:check("the plugin's Q of sentence 1 is the hook's activation at the target (1e-5)", diff < 1e-5, lesson.fmt(diff))
local x = qkv.q[0]:double()
local centred = x - x:mean(1, true)
local gap = (stats.correlation_matrix(x) - stats.cosine_matrix(centred)):abs():max():item()
L:check("correlation equals the cosine of the centred vectors (1e-12)", gap < 1e-12, lesson.fmt(gap))
L:finish()
