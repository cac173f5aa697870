-- lesson: 12-21 CodeChallenge: Negation tuning in MLP neurons (part 2)
-- One layer: a logistic regression per MLP unit (negation vs affirmation from the unit's activation
-- at the target token), the betas and their significance, and the best unit's predictions and heatmap.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-21",
  title = "CodeChallenge: Negation tuning in MLP neurons (part 2)",
  course = "part5_neurons_CCclassifyNegationsMLP (video 205), GPT-2 large, MLP (c_fc, before GELU) of layer 13 of 36",
  options = {
    layer = -1,          -- -1: the course's layer 13 of 36 at the same relative depth
    max_tokens = 0,      -- tokens of the text to label (0: all)
    max_windows = 0,     -- windows per class, spread evenly over the text (0: all, as the course)
    max_iter = 3000,     -- Newton steps at most (the course's maxiter)
    batch_size = 32,     -- windows per forward pass
    heatmap_rows = 20,   -- negation windows in the heatmap
    heatmap_from = 85,   -- first window index shown in the heatmap (to the window's end)
  },
  summary = "Every window of part 1 runs through the model; a native hook keeps each MLP unit's activation " ..
    "(`blocks.L.mlp.hook_pre`, before the nonlinearity, as the course's `c_fc` hook) at the target index 90 " ..
    "only. For each unit, `label ~ 1 + activation` is fitted by maximum likelihood (label 1 = negation, " ..
    "0 = affirmation; all units of the layer at once by batched Newton steps, as statsmodels' `Logit`). " ..
    "A unit is significant when its slope's Wald p < 0.05 / units (Bonferroni).",
}
local m = L.model
local neg = plugin("negation")
local opts = L.opts
local layer = opts.layer >= 0 and math.min(opts.layer, m.n_layer - 1) or L:layer(13, 36)

-- Data (as in part 1) --------------------------------------------------------------------------
local data = require("lib.negation_setup").windows(L, neg)
local source, w_neg, w_aff = data.source, data.negations, data.affirmations

-- The regressions ------------------------------------------------------------------------------
local r = neg.scan(m, w_neg, w_aff, { layers = { layer }, max_iter = opts.max_iter, batch_size = opts.batch_size })
local s = r.mlp
local beta, p, sig = s.beta[0], s.p[0], s.significant[0]
local units = r.units
local n_sig = s.n_significant[0]:item()
local n_sep = s.separated[0]:sum():item()
local n_unconverged = s.converged[0]:eq(false):sum():item() - n_sep
report.text(("## 1. One logistic regression per unit\n\n%s; %d negation and %d affirmation windows. Layer %d " ..
  "(the course's layer 13 of 36), %d units: %d significant (%.1f%%) at p < 0.05/%d = %s. %d units separate the " ..
  "two classes perfectly (no maximum-likelihood estimate: no beta, never significant), %d did not converge in " ..
  "%d steps. Forward passes %.1f s (%.0f tokens/s), fits %.1f s.")
  :format(source, r.n_negations, r.n_affirmations, layer, units, n_sig, s.pct_significant[0]:item(), units,
    lesson.fmt(r.threshold), n_sep, n_unconverged, opts.max_iter, r.timing.forward_s, r.timing.tokens_per_s,
    r.timing.fit_s))

-- Colour code: +2 significant beta > 0, +1 not significant beta > 0, -1 and -2 likewise for beta < 0.
local fitted = beta:isnan():eq(false)
local code = tensor.where(sig, 2, 1) * beta:sign()
local unit_index = tensor.arange(units):double()
report.figure(figure.scatter {
  x = unit_index:masked_select(fitted), y = beta:masked_select(fitted), color = code:masked_select(fitted),
  palette = "diverging", vmin = -2, vmax = 2, size = 1, alpha = 0.8,
  colorbar_label = "-2 sig. b<0, -1 n.s. b<0, +1 n.s. b>0, +2 sig. b>0",
  title = ("Layer %d: beta of every unit (%d of %d significant)"):format(layer, n_sig, units),
  xlabel = "unit", ylabel = "beta (logit slope)",
}, { name = "betas", caption = "Dark red: significant units that rise for negations; dark blue: significant units " ..
  "that rise for affirmations; pale: not significant. Separated units have no beta and are left out." })
local neglogp = -(p:clamp(1e-300)):log()
local threshold_line = -math.log(r.threshold)
report.figure(figure.scatter {
  x = beta:masked_select(fitted), y = neglogp:masked_select(fitted), color = code:masked_select(fitted),
  palette = "diverging", vmin = -2, vmax = 2, size = 1, alpha = 0.8,
  colorbar_label = "-2 sig. b<0, -1 n.s. b<0, +1 n.s. b>0, +2 sig. b>0",
  title = ("Layer %d: beta vs -log p (significant above -log(0.05/%d) = %.1f)"):format(layer, units, threshold_line),
  xlabel = "beta", ylabel = "-log p",
}, { name = "beta_vs_logp", caption = "The funnel: larger |beta| goes with smaller p, but the unit with the largest " ..
  "beta need not have the smallest p (effect size against its variance)." })

-- The best unit ---------------------------------------------------------------------------------
local best = s.best_unit[0]:item()
local min_p_unit
do
  local pos = code:eq(2)
  if pos:any() then min_p_unit = tensor.where(pos, p, 2):argmin():item() end
end
if best < 0 then
  report.text("## 2. The best unit\n\nNo unit is significant with beta > 0 in this layer, so there is no best unit " ..
    "to show (try more windows, --max-windows 0, or another layer).")
  L:finding("best unit (largest significant beta > 0)", "neuron 2022 of layer 13", "none")
else
  local x = s.best_activations[0]                                  -- [windows], affirmations first
  local y = r.labels
  local b0, b1 = s.intercept[0][best]:item(), s.beta[0][best]:item()
  local prob = (x * b1 + b0):sigmoid()
  local accuracy = prob:gt(0.5):eq(y:gt(0.5)):double():mean():item()
  local n_aff = r.n_affirmations
  report.text(("## 2. The best unit: %d\n\nThe largest significant positive beta (%s, p = %s). Its fitted " ..
    "probability of \"negation\" for every window, by true label; in-sample accuracy at the 0.5 threshold: %.1f%%.")
    :format(best, lesson.fmt(b1), lesson.fmt(s.best_p[0]:item()), 100 * accuracy))
  report.figure(figure.strip {
    groups = {
      { values = prob:narrow(0, 0, n_aff), label = "affirmations (label 0)" },
      { values = prob:narrow(0, n_aff, r.n_negations), label = "negations (label 1)" },
    },
    title = ("Layer %d unit %d: predicted probability, accuracy %.1f%%"):format(layer, best, 100 * accuracy),
    ylabel = "predicted p(negation)", ylim = { 0, 1 },
  }, { name = "best_unit_predictions", caption = "Each dot a window; a perfect classifier would put every " ..
    "affirmation below 0.5 and every negation above it." })
  L:check("accuracy recomputed from the fitted coefficients equals the scan's", math.abs(accuracy -
    s.best_accuracy[0]:item()) < 1e-9, ("%.4f vs %.4f"):format(accuracy, s.best_accuracy[0]:item()))

  -- Heatmap of the best unit over the negation windows.
  local t = neg.trace(m, w_neg, { layer = layer, unit = best, batch_size = opts.batch_size })  -- [windows, 101]
  local lo, hi = t:min():item(), t:max():item()
  local v = ((t - lo) / math.max(hi - lo, 1e-12)) ^ 2
  local from = math.min(opts.heatmap_from, t:size(1) - 1)
  local rows = math.min(opts.heatmap_rows, t:size(0))
  report.text(("## 3. Where the best unit fires\n\nUnit %d over the first %d negation windows, tokens %d to %d " ..
    "(the target is token 90). Colour: the activation min-max scaled over all %d negation windows, squared, as " ..
    "the course draws it (white = the lowest, red = the highest)."):format(best, rows, from, t:size(1) - 1, t:size(0)))
  local html = {}
  for i = 0, rows - 1 do
    local row = w_neg[i]:narrow(0, from, t:size(1) - from)
    html[#html + 1] = figure.token_heatmap(m:tokens(row), v[i]:narrow(0, from, t:size(1) - from),
      { vmax = 1, title = i == 0 and ("layer %d unit %d"):format(layer, best) or nil })
  end
  report.html(table.concat(html, "\n"))
  local at_target = v:select(1, 90):mean():item()
  local elsewhere = (v:sum() - v:select(1, 90):sum()):item() / (v:numel() - v:size(0))
  L:check("trace at the target equals the activations the scan fitted", t:select(1, 90):double():allclose(
    x:narrow(0, n_aff, r.n_negations), 1e-4, 1e-4), "negation windows, index 90")
  L:finding("best unit (largest significant beta > 0)", "neuron 2022 of layer 13 (of 5120)",
    ("unit %d of layer %d (of %d)"):format(best, layer, units))
  L:finding("best unit's accuracy", "well above chance (50%); no number given", ("%.1f%%"):format(100 * accuracy))
  L:finding("largest beta and smallest p are different units", "not necessarily the same unit",
    min_p_unit == best and ("the same unit here (%d)"):format(best) or ("yes: %d vs %d"):format(best, min_p_unit))
  L:finding("heatmap: the unit lights up on negations", "highlights not, won't; can, will stay low",
    ("mean scaled value %.2f at the target vs %.2f on other tokens"):format(at_target, elsewhere))
end
L:finding("significant units in this layer", "not given for layer 13 (part 3: ~70% early, ~25% late)",
  ("%.1f%% (%d of %d)"):format(s.pct_significant[0]:item(), n_sig, units))
L:check("significance is p < 0.05 / units", sig:equal(p:lt(0.05 / units)), "Bonferroni over " .. units .. " units")
L:finish()
