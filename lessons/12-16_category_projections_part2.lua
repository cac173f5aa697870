-- lesson: 12-16 CodeChallenge: Category-tuned MLP projections (part 2)
-- The most category-tuned units of the middle layer, word by word; then new sentences that mix
-- both categories: every target occurrence tested again, and how well the two tests agree.
local lesson = require("lib.lesson")
local category = require("lib.category_setup")

local L = lesson.start {
  id = "12-16",
  title = "CodeChallenge: Category-tuned MLP projections (part 2)",
  course = "part5_neurons_CCmultiTokenTtests (video 200), GPT-2 large, MLP output (mlp.c_proj), layer 16 of 36",
  options = {
    layer = -1,        -- -1: the course's layer 16 of 36 at the same relative depth
    alpha = 0.05,
    equal_var = true,
  },
  summary = "Part 1's t-test (`lessons/data/category_sentences.txt`, 40 sentences) gives t1 and p1 per unit and " ..
    "layer. `lessons/data/category_mixed_sentences.txt` holds 20 new sentences of our own that each contain targets " ..
    "of both categories (the course's first example is kept; its other 19 are in its notebook). Every final token " ..
    "of every target in them is found with `m:find_tokens`, and a second t-test (dental occurrences against " ..
    "household ones) gives t2 and p2. Significance is p < alpha / units within a layer.",
}
local m = L.model
local o = L.opts
local c = category.setup(L)
local n_layer, units = c.acts:size(1), c.acts:size(2)
local layer = o.layer >= 0 and math.min(o.layer, n_layer - 1) or L:layer(16, 36)
local threshold = o.alpha / units
local function ttest(acts, labels)
  local a = acts:index(0, labels:eq(0):nonzero():flatten())
  local b = acts:index(0, labels:eq(1):nonzero():flatten())
  return stats.ttest_ind(a, b, { equal_var = o.equal_var })
end
local r1 = ttest(c.acts, c.labels)

-- Ex. 4: the max-t and min-t units of the middle layer, word by word ---------------------------------
local t_layer = r1.t[layer]
local max_t, min_t = t_layer:argmax():item(), t_layer:argmin():item()
local x = c.target:double()
local y_max = c.acts:select(1, layer):select(1, max_t)
local y_min = c.acts:select(1, layer):select(1, min_t)
local lo = math.min(y_max:min():item(), y_min:min():item())
local hi = math.max(y_max:max():item(), y_min:max():item())
-- Is the tuning category-level? The unit's per-word means on the preferred side of the other category's.
local function word_means(y)
  local means = {}
  for w = 0, 7 do means[w + 1] = y:masked_select(c.target:eq(w)):mean():item() end
  return means
end
local function consistent(means, high_first)
  -- every word of the preferred category beyond every word of the other
  local a_min, a_max, b_min, b_max = math.huge, -math.huge, math.huge, -math.huge
  for w = 1, 4 do a_min, a_max = math.min(a_min, means[w]), math.max(a_max, means[w]) end
  for w = 5, 8 do b_min, b_max = math.min(b_min, means[w]), math.max(b_max, means[w]) end
  if high_first then return a_min > b_max end
  return a_max < b_min
end
local means_max, means_min = word_means(y_max), word_means(y_min)
local cat_max, cat_min = consistent(means_max, true), consistent(means_min, false)
local rows = {}
for w = 1, 8 do rows[w] = { category.targets[w], means_max[w], means_min[w] } end
report.text(("## 1. The most tuned units of layer %d\n\nUnit %d has the largest t (dental above household), unit %d " ..
  "the smallest. Their mean over each word's five sentences: all four dental words lie %s all four household words " ..
  "for unit %d, and %s for unit %d.")
  :format(layer, max_t, min_t, cat_max and "above" or "not all above", max_t,
    cat_min and "all below them" or "not all below them", min_t))
report.table("Mean per target word", { columns = { "word", "unit " .. max_t, "unit " .. min_t }, rows = rows })
report.figure(figure.line {
  series = {
    { x = x - 0.1, y = y_max, label = ("unit %d (max t = %.1f)"):format(max_t, t_layer[max_t]:item()), marker = "circle",
      color = "#1f77b4" },
    { x = x + 0.1, y = y_min, label = ("unit %d (min t = %.1f)"):format(min_t, t_layer[min_t]:item()), marker = "square",
      color = "#d62728" },
    { x = { 3.5, 3.5 }, y = { lo, hi }, color = "#808080", dashed = true },
  },
  title = ("Layer %d: the two most tuned units, sentence by sentence"):format(layer),
  xlabel = "target word (0-3 dental, 4-7 household)", ylabel = "MLP output at the final token",
}, { name = "tuned_units", caption = "Each point one sentence, placed at its target word; the dashed line separates " ..
  "the categories." })

-- Ex. 5: the mixed sentences ---------------------------------------------------------------------------
local mixed = L:data_lines("category_mixed_sentences.txt")
local rows2, positions2, target2 = category.find(m, mixed)
local longest = 0
for _, s in ipairs(mixed) do longest = math.max(longest, m:tokenize(s):numel()) end
local index_mat = tensor.full({ #mixed, longest }, -1)
for k = 0, rows2:numel() - 1 do index_mat[rows2[k]:item()][positions2[k]:item()] = target2[k]:item() end
local per_sentence_ok = true
for i = 0, #mixed - 1 do
  local own = target2:masked_select(rows2:eq(i))
  if not (own:lt(4):any() and own:ge(4):any()) then per_sentence_ok = false end
end
report.text(("## 2. Sentences that mix the categories\n\n%d sentences, %d target occurrences (%d dental, %d household). " ..
  "The image marks each target's final token with its word index (0-7) and every other token with -1.")
  :format(#mixed, rows2:numel(), target2:lt(4):sum():item(), target2:ge(4):sum():item()))
report.figure(figure.heatmap {
  values = index_mat, vmin = -1, vmax = 7, colorbar_label = "target index (-1: none)",
  title = "Target index of every token", xlabel = "token position", ylabel = "sentence",
}, { name = "target_index" })

-- Ex. 6: the second t-test and the agreement ----------------------------------------------------------
local acts2 = category.gather(m, mixed, rows2, positions2)                         -- [occurrences, n_layer, units]
local r2 = ttest(acts2, target2:ge(4):long())
local sig1, sig2 = r1.p:lt(threshold), r2.p:lt(threshold)
local either = (sig1:long() + sig2:long()):gt(0)
local both = (sig1:long() + sig2:long()):eq(2)
local same_sign = r1.t:sign():eq(r2.t:sign())
local n_either = either:sum():item()
local concordant = (either:long() * same_sign:long()):sum():item()
local concordance = n_either > 0 and 100 * concordant / n_either or 0 / 0
local r_t = stats.pearson(r1.t:flatten():unsqueeze(1), r2.t:flatten())[0]:item()
local neither = (either:eq(false))
local one = (either:long() - both:long()):eq(1)
local series = {
  { x = r1.t:masked_select(neither), y = r2.t:masked_select(neither), label = "neither significant", marker = "cross",
    color = "#d62728" },
}
if one:any() then
  series[#series + 1] = { x = r1.t:masked_select(one), y = r2.t:masked_select(one), label = "one significant",
    marker = "circle", color = "#f49ac2" }
end
if both:any() then
  series[#series + 1] = { x = r1.t:masked_select(both), y = r2.t:masked_select(both), label = "both significant",
    marker = "square", color = "#2ca02c" }
end
report.text(("## 3. Do the two tests agree?\n\nAcross all %d layers x %d units, %d units are significant in at " ..
  "least one test and %d in both. Concordance, the share of units significant in either test whose t has the same " ..
  "sign in both: %.1f%% (%d of %d). The t values of the two tests correlate with r = %.3f over all units. " ..
  "Both tests compare the same eight words, and a unit's output at a word's final token depends much on the token " ..
  "itself: agreement says the tuning holds when the words sit in new sentences next to words of the other " ..
  "category, not that it extends to dental or household words never tested.")
  :format(n_layer, units, n_either, both:sum():item(), concordance, concordant, n_either, r_t))
report.figure(figure.line {
  series = series, title = ("t1 (single-category sentences) vs t2 (mixed sentences), r = %.2f"):format(r_t),
  xlabel = "t1", ylabel = "t2",
}, { name = "t1_vs_t2", caption = "Each point one unit of one layer. Points along the rising diagonal keep their " ..
  "category preference in new sentences." })
report.tensor("ttests", tensor.stack({ r1.t, r1.p, r2.t, r2.p }), { caption = "[4, n_layer, units]: t1, p1, t2, p2" })

-- Checks and findings --------------------------------------------------------------------------------
local saved = tensor.load(report.dir() .. "/data/ttests.safetensors")["ttests"]
local s1, s2 = saved[1]:lt(threshold), saved[3]:lt(threshold)
local recount = ((s1:long() + s2:long()):gt(0):long() * saved[0]:sign():eq(saved[2]:sign()):long()):sum():item()
L:check("concordance recounted from the saved t and p", recount == concordant, recount .. " units")
L:check("every mixed sentence holds targets of both categories", per_sentence_ok)
L:check("every marked token ends its target", (function()
  for k = 0, rows2:numel() - 1 do
    local t = category.targets[target2[k]:item() + 1]
    local ids = m:tokenize(mixed[rows2[k]:item() + 1])
    local n_t = lesson.word_ids(m, t):numel()
    if m:decode(ids:narrow(0, positions2[k]:item() - n_t + 1, n_t)) ~= t then return false end
  end
  return true
end)(), rows2:numel() .. " occurrences")
L:finding("max/min-t units of the middle layer", "respond to all four words of their category",
  ("unit %d: %s; unit %d: %s"):format(max_t, cat_max and "all four" or "not all four", min_t,
    cat_min and "all four" or "not all four"))
L:finding("t1 vs t2", "a clear diagonal, especially for significant units", ("r = %.2f"):format(r_t))
L:finding("concordance", "not given in the notes", ("%.1f%%"):format(concordance))
L:finish()
