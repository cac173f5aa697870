-- lesson: 13-14 CC: clusters in internal vs terminal punctuation (part 2)
-- Lesson 13-13 across every hidden state: how the commas' and periods' vectors group from the
-- embeddings to the last layer, under covariance and under mutual information.
local lesson = require("lib.lesson")
local setup = require("lib.mi_setup")

local L = lesson.start {
  id = "13-14",
  title = "CC: clusters in internal vs terminal punctuation (part 2)",
  course = "part5_layer_CCpunctuationMI (video 220), GPT-2 medium, all 25 hidden states",
  options = {
    windows = 250,
    before = 20,
    after = 10,
    bins = 15,
    category = "fiction",
    seed = 13,
  },
  summary = "The windows of lesson 13-13 (the same seed gives the same windows); every hidden state at the " ..
    "mark from one set of batched passes of the `similarity` plugin. Per hidden state: the covariance and the " ..
    "binned MI between every pair of vectors, how they group by mark (within/between means and the " ..
    "separation of the marks along the first principal component), the scale of each matrix, and how many " ..
    "distinct vectors there are.",
}
local m = L.model
local ids = L:tokens { category = L.opts.category, max_chars = 2000000 }
local P = setup.punctuation(L, m, ids)
local label_tensor, n = P.labels, P.n
local states = P.vectors:size(0)
local separation = function(s) return setup.separation(s, label_tensor) end

local last_mi   -- the last hidden state's MI matrix, for the check
local sep = { cov = {}, mi = {} }
local ratio = { cov = {}, mi = {} }
local scale = { cov = {}, mi = {} }
local distinct = {}
local table_rows = {}
for l = 0, states - 1 do
  local x = P.vectors[l]:double()
  local cov = setup.covariance(x)
  local mi = stats.mi_matrix(x:t():contiguous(), { bins = L.opts.bins })
  last_mi = mi
  sep.cov[l + 1], sep.mi[l + 1] = separation(cov), separation(mi)
  ratio.cov[l + 1] = stats.selectivity(cov, label_tensor).ratio:item()
  ratio.mi[l + 1] = stats.selectivity(mi, label_tensor).ratio:item()
  scale.cov[l + 1] = stats.upper_triangle(cov):abs():mean():item()
  scale.mi[l + 1] = stats.upper_triangle(mi):mean():item()
  -- Distinct vectors: rows that differ from every other by more than float32 rounding.
  local groups, seen = 0, {}
  for i = 0, n - 1 do
    if not seen[i] then
      groups = groups + 1
      local same = (x - x[i]):abs():max(1):lt(1e-5):nonzero():flatten()
      for k = 0, same:numel() - 1 do seen[same[k]:item()] = true end
    end
  end
  distinct[l + 1] = groups
  table_rows[#table_rows + 1] = { l, distinct[l + 1], sep.cov[l + 1], sep.mi[l + 1], ratio.cov[l + 1], ratio.mi[l + 1],
    scale.cov[l + 1], scale.mi[l + 1] }
end

local x = tensor.arange(states)
local from1 = tensor.arange(1, states)
report.figure(figure.line {
  x = from1, markers = true,
  series = { { y = table.move(sep.cov, 2, states, 1, {}), label = "covariance" },
    { y = table.move(sep.mi, 2, states, 1, {}), label = "MI" } },
  title = "Separation of commas and periods along PC 1", xlabel = "hidden state", ylabel = "Cohen's d", logy = true,
}, { name = "separation_per_layer", caption = "Larger: the two marks form distinct clusters. Hidden state 0 is " ..
  "two points (infinite separation) and is left out." })
report.figure(figure.line {
  x = x, markers = true, series = { { y = scale.cov, label = "mean |covariance|" }, { y = scale.mi, label = "mean MI (bits)" } },
  title = "Scale of the matrices", xlabel = "hidden state (0 = embeddings)", ylabel = "value", logy = true,
}, { name = "scale_per_layer", caption = ("Mean |covariance| from %s to %s, mean MI from %s to %s bits (hidden state 1 " ..
  "to the last); MI cannot exceed log2(bins) = %.2f bits."):format(lesson.fmt(scale.cov[2]), lesson.fmt(scale.cov[states]),
  lesson.fmt(scale.mi[2]), lesson.fmt(scale.mi[states]), math.log(L.opts.bins, 2)) })
report.table("Per hidden state", {
  columns = { "hidden state", "distinct vectors", "separation (cov)", "separation (MI)", "within/between (cov)",
    "within/between (MI)", "mean |cov|", "mean MI" },
  rows = table_rows,
})

L:finding("hidden state 0 collapses to 2 points", "2 points",
  ("%d distinct vectors among %d windows at hidden state 0"):format(distinct[1], n))
local best_cov, best_layer = 0, 0
for l = 2, states do if sep.cov[l] > best_cov then best_cov, best_layer = sep.cov[l], l - 1 end end
L:finding("the clusters blur deeper in the model", "yes",
  ("covariance separation %s at hidden state 1, %s at the last (largest after 0: %s at %d)"):format(
    lesson.fmt(sep.cov[2]), lesson.fmt(sep.cov[states]), lesson.fmt(best_cov), best_layer))
L:finding("covariance keeps the vectors' scale, MI does not", "yes",
  ("mean |covariance| %s → %s; mean MI %s → %s (hidden state 1 → last)"):format(lesson.fmt(scale.cov[2]),
    lesson.fmt(scale.cov[states]), lesson.fmt(scale.mi[2]), lesson.fmt(scale.mi[states])))

-- Checks: at hidden state 0 every window holds the mark at the same position, so there is one
-- vector per mark; an MI entry is the pairwise estimator.
L:check("hidden state 0 has exactly one vector per mark", distinct[1] == 2, ("%d distinct"):format(distinct[1]))
local xl = P.vectors[states - 1]:double()
local one = stats.mi_binned(xl[0], xl[n - 1], { bins = L.opts.bins }):item()
L:check("an MI entry at the last hidden state equals stats.mi_binned of the two vectors (1e-12)",
  math.abs(one - last_mi[0][n - 1]:item()) < 1e-12)
L:finish()
