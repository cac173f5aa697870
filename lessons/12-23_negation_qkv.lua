-- lesson: 12-23 CodeChallenge: Negation tuning in QVK neurons
-- Part 3's regressions on the attention's query, key and value units instead of the MLP: the share
-- of significant units and their accuracy per layer, for Q, K and V separately.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-23",
  title = "CodeChallenge: Negation tuning in QVK neurons",
  course = "part5_neurons_CCclassifyNegationsQKV (video 207), GPT-2 large, attn.c_attn (Q | K | V, 3840 units) of all 36 layers",
  options = {
    max_tokens = 0,      -- tokens of the text to label (0: all)
    max_windows = 0,     -- windows per class, spread evenly over the text (0: all, as the course)
    max_iter = 3000,     -- Newton steps at most (the course's maxiter)
    batch_size = 32,     -- windows per forward pass
    pass_layers = 0,     -- layers gathered per sweep over the windows (0: all at once; fewer saves memory)
  },
  summary = "The same windows and regressions as parts 1-3, on `blocks.L.attn.hook_q`, `hook_k` and `hook_v` " ..
    "(the three thirds of GPT-2's `c_attn` output that the course hooked; GPT-Neo's and BERT's separate " ..
    "projections elsewhere). As in the course, Bonferroni counts all 3 x d_model units of a layer " ..
    "(p < 0.05 / 3 d_model), and the results are then split into Q, K and V. The course's plot swapped two " ..
    "legend labels (the curve labelled K is V and the one labelled V is K); here each curve carries the name " ..
    "of the matrix it comes from.",
}
local m = L.model
local neg = plugin("negation")
local opts = L.opts

local data = require("lib.negation_setup").windows(L, neg)
local source, w_neg, w_aff = data.source, data.negations, data.affirmations

local r = neg.scan(m, w_neg, w_aff, {
  site = "qkv", max_iter = opts.max_iter, batch_size = opts.batch_size,
  pass_layers = opts.pass_layers > 0 and opts.pass_layers or nil,
})
local n_layers = #r.layers
local layers = tensor.new(r.layers)
local names = { q = "Q", k = "K", v = "V" }
report.text(("## 1. Q, K and V of every layer\n\n%s; %d negation and %d affirmation windows; %d layers x %d " ..
  "units (%d each for Q, K and V) = %d regressions, significant at p < 0.05/%d = %s. Forward passes %.1f s " ..
  "(%.0f tokens/s), fits %.1f s.")
  :format(source, r.n_negations, r.n_affirmations, n_layers, r.tested_units, r.units, r.timing.fits,
    r.tested_units, lesson.fmt(r.threshold), r.timing.forward_s, r.timing.tokens_per_s, r.timing.fit_s))

local pct_series, acc_series, all_series = {}, {}, {}
for _, part in ipairs(r.parts) do
  local s = r[part]
  pct_series[#pct_series + 1] = { y = s.pct_significant, label = names[part] }
  acc_series[#acc_series + 1] = { y = s.mean_accuracy_sig_pos * 100, label = names[part] .. " (significant, beta > 0)" }
  all_series[#all_series + 1] = { y = s.mean_accuracy * 100, label = names[part] .. " (all units)" }
end
report.figure(figure.line {
  x = layers, series = pct_series, markers = true, ylim = { 0, 100 },
  title = "Q, K, V units that classify negation vs affirmation", xlabel = "layer", ylabel = "% significant",
}, { name = "pct_significant", caption = "Share of each matrix's units significant in each layer." })
report.figure(figure.line {
  x = layers, series = acc_series, markers = true, ylim = { 40, 100 },
  title = "Mean accuracy of significant beta > 0 units", xlabel = "layer", ylabel = "accuracy (%, in-sample)",
}, { name = "accuracy", caption = "The course's masked accuracy, per matrix. Chance is about 50%." })
report.figure(figure.line {
  x = layers, series = all_series, markers = true, ylim = { 40, 100 },
  title = "Mean accuracy of all units", xlabel = "layer", ylabel = "accuracy (%, in-sample)",
}, { name = "accuracy_all", caption = "Every unit, significant or not. The course turned its masked array into a " ..
  "tensor before splitting Q, K and V, which probably dropped the mask; if so its curves are these." })

local rows = {}
for i = 0, n_layers - 1 do
  local row = { r.layers[i + 1] }
  for _, part in ipairs(r.parts) do
    row[#row + 1] = r[part].pct_significant[i]:item()
    row[#row + 1] = 100 * r[part].mean_accuracy_sig_pos[i]:item()
  end
  rows[#rows + 1] = row
end
report.table("Per layer", { columns = { "layer", "Q % sig.", "Q acc. %", "K % sig.", "K acc. %", "V % sig.", "V acc. %" },
  rows = rows })
for _, part in ipairs(r.parts) do
  report.tensor("betas_" .. part, r[part].beta, { caption = "[layers, units] logit slopes of " .. names[part] })
  report.tensor("pvalues_" .. part, r[part].p, { caption = "[layers, units] p-values of " .. names[part] })
end

-- Combined over Q, K and V: the course's summary numbers.
local function combined(i)
  local n_sig, n_pos, acc_sum = 0, 0, 0
  for _, part in ipairs(r.parts) do
    local s = r[part]
    n_sig = n_sig + s.n_significant[i]:item()
    local k = s.n_significant_positive[i]:item()
    if k > 0 then n_pos, acc_sum = n_pos + k, acc_sum + k * s.mean_accuracy_sig_pos[i]:item() end
  end
  return 100 * n_sig / r.tested_units, n_pos > 0 and 100 * acc_sum / n_pos or 0 / 0
end
local pct_first, acc_first = combined(0)
local pct_last, acc_last = combined(n_layers - 1)
local per_part = {}
for _, part in ipairs(r.parts) do
  per_part[#per_part + 1] = ("%s %.1f%%"):format(names[part], r[part].pct_significant:mean():item())
end
L:finding("% significant (Q, K, V together), early", "~70%", ("%.1f%% (layer %d)"):format(pct_first, r.layers[1]))
L:finding("% significant (Q, K, V together), late", "<30%", ("%.1f%% (layer %d)"):format(pct_last, r.layers[n_layers]))
L:finding("accuracy of significant beta > 0 units, early", "~75%", ("%s%% (layer %d)"):format(lesson.fmt(acc_first),
  r.layers[1]))
L:finding("accuracy of significant beta > 0 units, late", "~50-60% (near chance)", ("%s%% (layer %d)"):format(
  lesson.fmt(acc_last), r.layers[n_layers]))
L:finding("Q, K and V all carry negation information", "yes, with different effect sizes",
  "mean % significant over layers: " .. table.concat(per_part, ", "))
L:finding("legend of the Q/K/V plot", "swapped: the curve labelled K is V, the one labelled V is K",
  "each curve labelled by its own matrix (the plugin's test compares each with hook_q/k/v)")
L:check("results come in the order Q, K, V", r.parts[1] == "q" and r.parts[2] == "k" and r.parts[3] == "v",
  table.concat(r.parts, ", "))
-- Under grouped-query attention K and V have fewer units than Q (num_key_value_heads heads).
local qkv_units = r.q.p:size(1) + r.k.p:size(1) + r.v.p:size(1)
L:check("Bonferroni over all Q, K and V units of a layer (3 x d_model without grouped-query attention)",
  r.tested_units == qkv_units and r.q.significant:equal(r.q.p:lt(0.05 / r.tested_units)),
  ("p < 0.05/%d"):format(r.tested_units))
L:finish()
