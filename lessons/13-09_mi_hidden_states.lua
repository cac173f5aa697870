-- lesson: 13-09 Pairwise MI through the LLM
-- Mutual information between pairs of hidden-state dimensions, over the tokens of one text, at
-- every layer; next to the same with each dimension's values shuffled across tokens, which shows
-- how much of the number is the estimator's offset rather than dependence.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "13-09",
  title = "Pairwise MI through the LLM",
  course = "part5_layer_MIhiddenStates (video 215), GPT-2 small, the Wikipedia article on Turkish coffee",
  options = {
    text_file = "turkish_coffee.txt",   -- lessons/data
    units = -1,      -- dimensions paired: -1 all (GPT-2 small: 768, 294,528 pairs), else the first `units`
    bins = 15,
    seed = 9,        -- the shuffled control
  },
  summary = "The text is run through the model once (in rows of at most the model's context); every token is " ..
    "a sample. The `mi` plugin gathers the chosen dimensions of every hidden state on the model's device and " ..
    "computes the binned mutual information (15 bins, bits) of every pair of dimensions there " ..
    "(`stats.mi_matrix`). Its `shuffle` control does the same after shuffling each dimension's values across " ..
    "tokens on its own: the dependence is gone, each dimension's distribution is kept, and what remains is " ..
    "the estimator's bias for this many tokens.",
}
local m = L.model
local mi = plugin("mi")
report.text("Substitution: the course reads Wikipedia's article on Turkish coffee; offline, this run reads " ..
  "`lessons/data/" .. L.opts.text_file .. "`, a text on the same subject written for the lesson.")
local text = table.concat(L:data_lines(L.opts.text_file), "\n")
local ids = m:tokenize(text)
local seq_len = math.min(ids:numel(), m.max_positions)
local n_rows = (ids:numel() + seq_len - 1) // seq_len
local rows = tensor.zeros({ n_rows, seq_len }):long()
local mask = tensor.zeros({ n_rows, seq_len }):long()
for r = 0, n_rows - 1 do
  local len = math.min(seq_len, ids:numel() - r * seq_len)
  rows[r]:narrow(0, 0, len):copy(ids:narrow(0, r * seq_len, len))
  mask[r]:narrow(0, 0, len):fill(1)
end
local units = L.opts.units > 0 and math.min(L.opts.units, m.d_model) or m.d_model
local res = mi.pairwise(m, { ids = rows, mask = mask }, { units = tensor.arange(units), bins = L.opts.bins,
  shuffle = L.opts.seed })
local layers = res.mi:size(0)
local n_pairs = units * (units - 1) // 2
report.text(("%d tokens, %d dimensions of each of the %d hidden states: %d pairs per hidden state."):format(
  res.n_tokens, units, layers, n_pairs))

local mean_real = tensor.zeros({ layers }, { dtype = "float64" })
local mean_shuffled = tensor.zeros({ layers }, { dtype = "float64" })
for l = 0, layers - 1 do
  mean_real[l] = stats.upper_triangle(res.mi[l]):mean()
  mean_shuffled[l] = stats.upper_triangle(res.mi_shuffled[l]):mean()
end
report.figure(figure.line {
  x = tensor.arange(layers), markers = true,
  series = { { y = mean_real, label = "hidden states" }, { y = mean_shuffled, label = "each dimension shuffled" },
    { y = mean_real - mean_shuffled, label = "difference" } },
  title = "Mean pairwise MI between dimensions", xlabel = "hidden state (0 = embeddings)", ylabel = "bits",
}, { name = "mean_mi_per_layer", caption = "The shuffled control is the estimator's offset for this many tokens." })
local mid = layers // 2
report.figure(figure.histogram {
  series = { { values = stats.upper_triangle(res.mi[0]), label = "hidden state 0" },
    { values = stats.upper_triangle(res.mi[mid]), label = "hidden state " .. mid },
    { values = stats.upper_triangle(res.mi[layers - 1]), label = "hidden state " .. (layers - 1) },
    { values = stats.upper_triangle(res.mi_shuffled[mid]), label = "shuffled, hidden state " .. mid } },
  bins = 60, density = true, title = "Pairwise MI between dimensions", xlabel = "bits", ylabel = "density",
}, { name = "mi_histograms", caption = "One value per pair of dimensions." })
local shown = math.min(units, 64)
report.figure(figure.heatmap {
  values = res.mi[mid]:narrow(0, 0, shown):narrow(1, 0, shown),
  title = ("MI between the first %d dimensions, hidden state %d"):format(shown, mid),
  xlabel = "dimension", ylabel = "dimension", colorbar_label = "bits",
}, { name = "mi_matrix", caption = "The diagonal is each dimension's entropy." })

-- MI against |correlation| at the middle hidden state: where they disagree, the dependence is
-- not linear (or is the estimator's noise).
local _, out = m:forward({ ids = rows, mask = mask }, { hidden_states = true })
local real = mask:reshape({ -1 }):eq(1):nonzero():flatten()
local h = out.hidden_states[mid]:reshape({ -1, m.d_model }):index(0, real):narrow(1, 0, units):double()
local r = stats.correlation_matrix(h:t():contiguous())
report.figure(figure.scatter {
  x = stats.upper_triangle(r):abs(), y = stats.upper_triangle(res.mi[mid]), alpha = 0.2, size = 0.5,
  title = ("MI against |correlation|, hidden state %d"):format(mid), xlabel = "|Pearson r|", ylabel = "MI (bits)",
}, { name = "mi_vs_correlation", caption = "One point per pair of dimensions." })

local rows_table = {}
for l = 0, layers - 1 do
  rows_table[#rows_table + 1] = { l, mean_real[l]:item(), mean_shuffled[l]:item(), (mean_real[l] - mean_shuffled[l]):item() }
end
report.table("Mean pairwise MI per hidden state (bits)", { columns = { "hidden state", "real", "shuffled", "difference" },
  rows = rows_table })

L:finding("pairwise MI has a roughly constant offset (≈ 1.0 bits)", "≈ 1.0",
  ("mean %s to %s bits across hidden states; the shuffled control alone gives %s to %s"):format(
    lesson.fmt(mean_real:min():item()), lesson.fmt(mean_real:max():item()), lesson.fmt(mean_shuffled:min():item()),
    lesson.fmt(mean_shuffled:max():item())))
L:finding("relative values are safer to interpret than absolute ones", "yes",
  ("the offset is %s%% of the mean MI on average"):format(lesson.fmt(100 * (mean_shuffled / mean_real):mean():item())))

-- Checks: the plugin equals stats.mi_matrix of the hidden state computed here; the shuffled
-- control keeps each dimension's entropy (the diagonal).
local diff = (stats.mi_matrix(h, { bins = L.opts.bins }) - res.mi[mid]):abs():max():item()
L:check(("the plugin's matrix at hidden state %d equals stats.mi_matrix of forward's hidden state (1e-9)"):format(mid),
  diff < 1e-9, lesson.fmt(diff))
local on_diagonal = tensor.eye(units):eq(1)
local diag = (res.mi[mid]:masked_select(on_diagonal) - res.mi_shuffled[mid]:masked_select(on_diagonal)):abs():max():item()
L:check("shuffling keeps each dimension's entropy (the diagonal, 1e-9)", diag < 1e-9, lesson.fmt(diag))
L:check("the shuffled control has less MI than the real hidden states at every layer",
  (mean_real - mean_shuffled):min():item() > 0, lesson.fmt((mean_real - mean_shuffled):min():item()))
L:finish()
