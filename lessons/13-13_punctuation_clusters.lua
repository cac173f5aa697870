-- lesson: 13-13 CC: clusters in internal vs terminal punctuation (part 1)
-- Commas and periods, each in its own window of text: do their hidden-state vectors group by
-- punctuation, and do covariance and mutual information between the vectors see the same groups?
local lesson = require("lib.lesson")
local setup = require("lib.mi_setup")

local L = lesson.start {
  id = "13-13",
  title = "CC: clusters in internal vs terminal punctuation (part 1)",
  course = "part5_layer_CCpunctuationMI (video 219), GPT-2 medium, Heart of Darkness (pg219), layer 1",
  options = {
    windows = 250,     -- per punctuation mark
    before = 20,       -- tokens before the mark
    after = 10,        -- tokens after it
    layer = 1,         -- the hidden state compared (the course's 1: the first block's output)
    bins = 15,
    category = "fiction",
    seed = 13,
  },
  summary = "Windows of `before` tokens, the mark and `after` tokens are cut around randomly chosen commas and " ..
    "periods, so the mark always sits at the same position; the `similarity` plugin reads every hidden state " ..
    "there in batched passes. Between every pair of the vectors: the covariance (the vectors' dimensions as " ..
    "paired samples) and the binned mutual information (`stats.mi_matrix`, 15 bins, bits). Each matrix is " ..
    "shown sorted commas first, and each item is placed by the first two principal components of its row " ..
    "(its similarities to all items), coloured by mark.",
}
local m = L.model
report.text("Substitution: the course reads Heart of Darkness (Project Gutenberg pg219); offline, this run reads " ..
  "the Brown corpus (" .. L.opts.category .. ").")
local ids = L:tokens { category = L.opts.category, max_chars = 2000000 }
local P = setup.punctuation(L, m, ids)
local label_tensor, n = P.labels, P.n
local layer = math.min(L.opts.layer, m.n_layer)
report.text(("%d commas and %d periods in %d tokens; %d and %d windows of %d tokens; hidden state %d."):format(
  P.counts[1], P.counts[2], P.tokens, P.windows[1], P.windows[2], P.all:size(1), layer))

local x = P.vectors[layer]:double()                           -- [n, d]
local cov = setup.covariance(x)                                -- [n, n]
local mi = stats.mi_matrix(x:t():contiguous(), { bins = L.opts.bins })
local results = {}
for _, item in ipairs({ { "covariance", cov }, { "MI", mi } }) do
  local name, s = item[1], item[2]
  report.figure(figure.heatmap {
    values = s, title = ("%s between punctuation vectors, hidden state %d"):format(name, layer),
    xlabel = "window (commas, then periods)", ylabel = "window", colorbar_label = name == "MI" and "bits" or "covariance",
  }, { name = "matrix_" .. name:lower(), caption = "Commas first, then periods." })
  local e = setup.embed2(s)
  report.figure(figure.line {
    series = {
      { x = e:select(1, 0):masked_select(label_tensor:eq(0)), y = e:select(1, 1):masked_select(label_tensor:eq(0)),
        marker = "circle", label = "comma" },
      { x = e:select(1, 0):masked_select(label_tensor:eq(1)), y = e:select(1, 1):masked_select(label_tensor:eq(1)),
        marker = "triangle", label = "period" } },
    title = ("Windows placed by their %s with every other window"):format(name), xlabel = "PC 1", ylabel = "PC 2",
  }, { name = "embedding_" .. name:lower(), caption = "Each point is one window's row of the matrix, projected." })
  results[name] = stats.selectivity(s, label_tensor)
  results[name].separation = setup.separation(s, label_tensor)   -- along PC 1, Cohen's d
end
report.table("Grouping by punctuation mark", {
  columns = { "matrix", "within-mark mean", "between-mark mean", "within / between", "separation on PC 1 (d)" },
  rows = { { "covariance", results.covariance.within:item(), results.covariance.between:item(),
    results.covariance.ratio:item(), results.covariance.separation }, { "MI (bits)", results.MI.within:item(),
    results.MI.between:item(), results.MI.ratio:item(), results.MI.separation } },
})

L:finding("covariance shows clusters at layer 1; MI does not", "3 clusters (cov), none (MI)",
  ("the marks separate along PC 1 by d = %s (covariance) and %s (MI); within/between %s and %s"):format(
    lesson.fmt(results.covariance.separation), lesson.fmt(results.MI.separation),
    lesson.fmt(results.covariance.ratio:item()), lesson.fmt(results.MI.ratio:item())))

-- Checks: the vectors are the hidden state at the mark; an MI entry is the pairwise estimator.
local _, out = m:forward(P.all[0]:unsqueeze(0), { hidden_states = true })
local diff = (out.hidden_states[layer][0][L.opts.before]:float() - P.vectors[layer][0]):abs():max():item()
L:check("the plugin's vector of window 1 is its hidden state at the mark (1e-5)", diff < 1e-5, lesson.fmt(diff))
local one = stats.mi_binned(x[0], x[n - 1], { bins = L.opts.bins }):item()
L:check("an MI entry equals stats.mi_binned of the two vectors (1e-12)", math.abs(one - mi[0][n - 1]:item()) < 1e-12)
L:finish()
