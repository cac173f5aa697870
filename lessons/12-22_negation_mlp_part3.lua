-- lesson: 12-22 CodeChallenge: Negation tuning in MLP neurons (part 3)
-- Every layer: the share of MLP units whose activation at the target token predicts negation vs
-- affirmation (Bonferroni), and how accurate they are, from the first layer to the last.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-22",
  title = "CodeChallenge: Negation tuning in MLP neurons (part 3)",
  course = "part5_neurons_CCclassifyNegationsMLP (video 206), GPT-2 large, MLP (c_fc) of all 36 layers x 5120 neurons",
  options = {
    max_tokens = 0,      -- tokens of the text to label (0: all)
    max_windows = 0,     -- windows per class, spread evenly over the text (0: all, as the course)
    max_iter = 3000,     -- Newton steps at most (the course's maxiter)
    batch_size = 32,     -- windows per forward pass
    pass_layers = 0,     -- layers gathered per sweep over the windows (0: all at once; fewer saves memory)
  },
  summary = "Part 2's regression for every unit of every layer: `label ~ 1 + activation` at the target index " ..
    "(label 1 = negation), fitted for all units of a layer at once (the course ran about 184,000 separate " ..
    "statsmodels fits). Per layer: the share of units significant at p < 0.05 / units, and the mean in-sample " ..
    "accuracy (threshold 0.5) of all units and of the significant units with beta > 0 (the course's " ..
    "`masked_accuracy`).",
}
local m = L.model
local neg = plugin("negation")
local opts = L.opts

local data = require("lib.negation_setup").windows(L, neg)
local source, w_neg, w_aff = data.source, data.negations, data.affirmations

local r = neg.scan(m, w_neg, w_aff, {
  max_iter = opts.max_iter, batch_size = opts.batch_size, pass_layers = opts.pass_layers > 0 and opts.pass_layers or nil,
})
local s = r.mlp
local n_layers = #r.layers
local layers = tensor.new(r.layers)
local pct = s.pct_significant
local acc_all, acc_sig = s.mean_accuracy * 100, s.mean_accuracy_sig_pos * 100
report.text(("## 1. All layers\n\n%s; %d negation and %d affirmation windows; %d layers x %d units = %d " ..
  "regressions (%d units separate the classes perfectly: no estimate, never significant). Forward passes %.1f s " ..
  "(%.0f tokens/s, activations kept at the target only), fits %.1f s.")
  :format(source, r.n_negations, r.n_affirmations, n_layers, r.units, r.timing.fits, s.separated:sum():item(),
    r.timing.forward_s, r.timing.tokens_per_s, r.timing.fit_s))

report.text("A caveat the course does not make: the two classes are different tokens (` not`, `'t`, ` never` " ..
  "against ` can`, ` could`, ` may`...), so any unit that carries the identity of the current token separates " ..
  "them, and even a model with random weights has many significant units in its first layers. The curves show " ..
  "how much each layer still encodes about the target token in its context; the course reads their fall as the " ..
  "late layers turning from the current token to predicting the next one.")
report.figure(figure.line {
  x = layers, series = { { y = pct, label = "significant units" } }, markers = true, ylim = { 0, 100 },
  title = "Units that classify negation vs affirmation, per layer", xlabel = "layer", ylabel = "% significant",
}, { name = "pct_significant", caption = ("Share of the %d units with p < 0.05/%d in each layer."):format(r.units, r.units) })
report.figure(figure.line {
  x = layers,
  series = { { y = acc_all, label = "all units" }, { y = acc_sig, label = "significant, beta > 0" } },
  markers = true, ylim = { 40, 100 },
  title = "Mean classification accuracy per layer", xlabel = "layer", ylabel = "accuracy (%, in-sample)",
}, { name = "accuracy", caption = "Chance is 50% for balanced classes (here " ..
  ("%.0f%% of the windows are negations"):format(100 * r.n_negations / (r.n_negations + r.n_affirmations)) ..
  "). A layer without significant positive units has no point on the second line." })

local rows = {}
for i = 0, n_layers - 1 do
  rows[#rows + 1] = { r.layers[i + 1], s.n_significant[i]:item(), pct[i]:item(), acc_all[i]:item(), acc_sig[i]:item(),
    s.best_unit[i]:item(), s.best_beta[i]:item(), 100 * s.best_accuracy[i]:item() }
end
report.table("Per layer", { columns = { "layer", "significant", "% significant", "mean accuracy (all) %",
  "mean accuracy (sig. beta>0) %", "best unit", "best beta", "best unit accuracy %" }, rows = rows })
report.tensor("betas", s.beta, { caption = "[layers, units] logit slopes (nan: separated)" })
report.tensor("pvalues", s.p, { caption = "[layers, units] Wald p-values of the slopes" })
report.tensor("accuracy", s.accuracy, { caption = "[layers, units] in-sample accuracy" })

-- Findings: the first and last layers, and the trend between.
local first, last = 0, n_layers - 1
local half = math.max(1, n_layers // 2)
local early = pct:narrow(0, 0, half):mean():item()
local late = pct:narrow(0, n_layers - half, half):mean():item()
local function at(t, i) return lesson.fmt(t[i]:item(), 3) end
L:finding("% significant, early layers", "up to ~70%", ("%s%% in layer %d (max %s%%)"):format(at(pct, first),
  r.layers[1], lesson.fmt(pct:max():item(), 3)))
L:finding("% significant, late layers", "~25% (still about 1000 of 5120 neurons)",
  ("%s%% in layer %d (%d of %d units)"):format(at(pct, last), r.layers[n_layers], s.n_significant[last]:item(), r.units))
L:finding("trend with depth", "falls", ("%s: first half %.1f%%, second half %.1f%%"):format(
  late < early and "falls" or (late > early and "rises" or "flat"), early, late))
L:finding("accuracy of significant beta > 0 units, early", "~75-80%", ("%s%% (layer %d)"):format(at(acc_sig, first), r.layers[1]))
L:finding("accuracy of significant beta > 0 units, late", "~65% (chance 50%)", ("%s%% (layer %d)"):format(at(acc_sig, last),
  r.layers[n_layers]))
L:check("% significant equals 100 * n_significant / units", pct:allclose(s.n_significant:double() * 100 / r.units))
L:check("significant units have p < 0.05 / units", s.significant:equal(s.p:lt(0.05 / r.units)))
local summary_ok = true
for i = 0, n_layers - 1 do
  local mask = (s.significant[i]:long() + s.beta[i]:gt(0):long()):eq(2)
  if mask:any() then
    summary_ok = summary_ok and math.abs(s.accuracy[i]:masked_select(mask):mean():item() -
      s.mean_accuracy_sig_pos[i]:item()) < 1e-12
  else
    summary_ok = summary_ok and s.mean_accuracy_sig_pos[i]:isnan():item()
  end
end
L:check("mean accuracy of significant beta > 0 units recomputed from the per-unit accuracies", summary_ok)
L:finish()
