-- lesson: 13-04 Grouping and RSA in Q and K matrices
-- 34 words from three categories (space, furniture, fruit), each at the end of the same short
-- context: are the queries (and keys) of words of one category more alike than those of different
-- categories, and do Q and K arrange the words the same way (representational similarity)?
local lesson = require("lib.lesson")
local setup = require("lib.similarity_setup")

local L = lesson.start {
  id = "13-04",
  title = "Grouping and RSA in Q and K matrices",
  course = "part5_layer_semanticGroupsRSA (video 211), GPT-2 medium (24 layers), h[5].attn.c_attn",
  options = {
    layer = -1,          -- -1: the course's layer 5 of 24 at the same relative depth
    words = "semantic_groups.txt",
    context = "I was thinking about the {word}",   -- the identical context; {word} is where each word goes
    permutations = 1000, -- label shuffles for the selectivity's permutation p-value
    seed = 4,
  },
  summary = "Each word ends the same context, so the sentences differ only in the word; the `similarity` plugin " ..
    "reads Q and K at the word's last token. `stats.cosine_matrix` gives the 34 × 34 similarity matrices; " ..
    "category selectivity (`stats.selectivity`) is the mean similarity of different words of one category " ..
    "over that of words of different categories; RSA (`stats.rsa`) correlates the two matrices' entries above " ..
    "the diagonal, with Pearson's r (the course's) and Spearman's rho. A permutation test shuffles the category " ..
    "labels to see how often chance gives a selectivity as large.",
}
local m = L.model
local W = setup.word_groups(L, m, L.opts.words, L.opts.context)
local words, names, label_tensor = W.words, W.names, W.labels
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(5, 24)
local qkv = setup.qkv(m, W, { layer })
local prefix = L.opts.context:match("^(.-){word}"):gsub("%s+$", "")
local context_tokens = m:tokenize(prefix, { add_special_tokens = false }):numel()
report.text(("Context %q: %d tokens before the word (the course's is 5), layer %d."):format(L.opts.context,
  context_tokens, layer))

local S = { Q = stats.cosine_matrix(qkv.q[0]):double(), K = stats.cosine_matrix(qkv.k[0]):double() }
local sel, null_p = {}, {}
for _, key in ipairs({ "Q", "K" }) do
  report.figure(figure.heatmap {
    values = S[key], xlabels = words, ylabels = words, palette = "viridis",
    title = ("Cosine similarity of the words' %s, layer %d"):format(key, layer), colorbar_label = "cosine",
  }, { name = "cosine_" .. key, caption = "Words in their categories' order: " .. table.concat(names, ", ") .. "." })
  sel[key] = stats.selectivity(S[key], label_tensor)
  -- Permutation test: the share of label shuffles with a selectivity at least as large.
  local ratios = tensor.zeros({ L.opts.permutations }, { dtype = "float64" })
  for p = 0, L.opts.permutations - 1 do
    local _, order = tensor.rand({ #words }, { seed = L.opts.seed * 100003 + p }):sort(0)
    ratios[p] = stats.selectivity(S[key], label_tensor:index(0, order)).ratio
  end
  null_p[key] = (ratios:ge(sel[key].ratio:item() - 1e-12):sum():item() + 1) / (L.opts.permutations + 1)
end
local pearson = stats.rsa(S.Q, S.K, { method = "pearson" })
local spearman = stats.rsa(S.Q, S.K, { method = "spearman" })
report.table("Category selectivity and RSA", {
  columns = { "measure", "Q", "K" },
  rows = {
    { "mean within-category cosine", sel.Q.within:item(), sel.K.within:item() },
    { "mean between-category cosine", sel.Q.between:item(), sel.K.between:item() },
    { "selectivity (within / between)", sel.Q.ratio:item(), sel.K.ratio:item() },
    { ("permutation p (%d label shuffles)"):format(L.opts.permutations), null_p.Q, null_p.K },
    { ("RSA Q vs K, Pearson r (%d pairs)"):format(pearson.pairs), pearson.r:item(), "" },
    { "RSA Q vs K, Spearman rho", spearman.r:item(), "" },
  },
})
report.figure(figure.scatter {
  x = stats.upper_triangle(S.Q), y = stats.upper_triangle(S.K), alpha = 0.5,
  title = ("RSA: every word pair's Q similarity against its K similarity (r = %.2f)"):format(pearson.r:item()),
  xlabel = "cosine of Q", ylabel = "cosine of K",
}, { name = "rsa_scatter", caption = "One point per pair of words." })

L:finding("category selectivity > 1", "> 1", ("Q %s (p = %s), K %s (p = %s)"):format(lesson.fmt(sel.Q.ratio:item()),
  lesson.fmt(null_p.Q), lesson.fmt(sel.K.ratio:item()), lesson.fmt(null_p.K)))
L:finding("RSA between Q and K", "r > 0.8–0.9", ("Pearson r %s, Spearman rho %s"):format(
  lesson.fmt(pearson.r:item()), lesson.fmt(spearman.r:item())))

-- Checks: selectivity by hand; RSA of a matrix with itself is 1; the permutation null centres near 1.
local within, between, nw, nb = 0, 0, 0, 0
for i = 1, #words do
  for j = 1, #words do
    if i ~= j then
      local v = S.Q[i - 1][j - 1]:item()
      if W.labels[i - 1]:item() == W.labels[j - 1]:item() then
        within, nw = within + v, nw + 1
      else
        between, nb = between + v, nb + 1
      end
    end
  end
end
local by_hand = (within / nw) / (between / nb)
L:check("selectivity equals the ratio of means by hand (1e-12)", math.abs(by_hand - sel.Q.ratio:item()) < 1e-12,
  ("%s vs %s"):format(lesson.fmt(by_hand, 6), lesson.fmt(sel.Q.ratio:item(), 6)))
local self = stats.rsa(S.Q, S.Q, { method = "spearman" }).r:item()
L:check("RSA of a matrix with itself is 1", math.abs(self - 1) < 1e-12, lesson.fmt(self))
L:finish()
