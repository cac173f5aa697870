-- lesson: 17-03 Laminar profile of MLP t-lesions
-- Lesson 17-02 at every layer: him/her neurons selected by a t-test in each layer (one pass over the
-- sentences), then each layer's sets lesioned in turn, giving a laminar profile of their effect.
local lesson = require("lib.lesson")
local setup = require("lib.tlesion_setup")

local L = lesson.start {
  id = "17-03",
  title = "Laminar profile of MLP t-lesions",
  course = "part6_mlp_CCstatsMLPlaminar (video 267), BERT large (24 layers, 4096 MLP units), the 54 him/her " ..
    "pairs and the test sentence of lesson 17-02",
  options = {
    pairs = "him_her_pairs.txt", -- lessons/data: "him" sentence <tab> the same frame with "her"
    test = "paired",             -- or "independent"
    alpha = 0.05,                -- FDR (Benjamini-Hochberg), per layer
    sentence = "Robert helped Lucy with {her} project, and she thanked {him} for his hard work.",  -- the course's
    max_units = -1,              -- units lesioned per set and layer, the largest |t|; -1: 5% of the units, 0: all
  },
  summary = "Ex. 1: one pass over the 108 sentences with a native hook on every layer's `blocks.L.mlp.hook_pre` " ..
    "that gathers the pronoun's activations and runs the paired t-test + FDR per neuron (the `tlesion` plugin's " ..
    "`laminar`). Ex. 2: the share of him > her and her > him neurons per layer. Ex. 3: the baseline logits of " ..
    "lesson 17-02. Ex. 4: for each layer L, the her neurons of L are zeroed after the nonlinearity at the HER " ..
    "slot (row 1) and the him neurons at the HIM slot (row 2); Δ = clean − lesioned gives the overall magnitude " ..
    "mean |Δ| over the lesioned rows and the signed Δ of the matching pronoun at its slot. Slots are [MASK]s " ..
    "on a masked model and the token before the pronoun on a causal one (see lesson 17-02).",
}
report.text("Substitution: the course's 54 him/her sentence pairs are written out in its notebook, which this " ..
  "project cannot reach; this run reads `lessons/data/" .. L.opts.pairs .. "`" .. (L.opts.pairs == "him_her_pairs.txt" and
  ", 54 pairs of our own in the same form (a \"him\" sentence and the same frame with \"her\")" or "") .. ".")
local m = L.model
local tl = plugin("tlesion")
local fmt = lesson.fmt

local him_rows, her_rows = L:data_pairs(L.opts.pairs)
-- The pronouns, the test rows and their slots, as lesson 17-02 (see lib/tlesion_setup.lua).
local S = setup.new(m, tl, L.opts.sentence)
local causal, HER, HIM, full = S.causal, S.her, S.him, S.full
local texts, slot_her, slot_him = S.texts, S.slot_her, S.slot_him

local cap = setup.unit_cap(m, L.opts.max_units)
local lam = tl.laminar(m, him_rows, her_rows, texts, {
  target_a = HIM, target_b = HER, test = L.opts.test, alpha = L.opts.alpha, max_units = cap,
  targets = { HER, HIM }, readout = { slot_her, slot_him },
  lesions = {
    { row = 1, position = slot_her, neurons = "b", target = HER },   -- her > him neurons at the HER slot
    { row = 2, position = slot_him, neurons = "a", target = HIM },   -- him > her neurons at the HIM slot
  },
})
local n = #lam.layers
local layers = tensor.new(lam.layers)

-- Ex. 2: selection per layer ---------------------------------------------------------------------
report.text(("## 1. Neurons selected in every layer\n\n%d pairs, %s test, FDR %s per layer over its %d units " ..
  "(`blocks.L.mlp.hook_pre` at the pronoun).")
  :format(lam.n_a, L.opts.test, fmt(L.opts.alpha), lam.units))
report.figure(figure.line {
  x = layers, markers = true,
  series = { { y = lam.percent_b_gt_a, label = "her > him" }, { y = lam.percent_a_gt_b, label = "him > her" } },
  title = "Significant neurons per layer", xlabel = "layer", ylabel = "% of the layer's MLP units",
}, { name = "percent_selected", caption = "The share of each layer's MLP units whose activation at the pronoun " ..
  "differs between the him and her sentences (FDR-corrected), in each direction." })

report.text(("The lesion sets are capped at %s per set and layer, the significant units with the largest |t| " ..
  "(`-- --max-units 0` lesions all of them): per layer %d to %d him and %d to %d her neurons are lesioned, of %d " ..
  "to %d and %d to %d significant."):format(cap > 0 and tostring(cap) .. " units" or "no limit",
  lam.count_a_gt_b:min():item(), lam.count_a_gt_b:max():item(), lam.count_b_gt_a:min():item(),
  lam.count_b_gt_a:max():item(), lam.significant_a_gt_b:min():item(), lam.significant_a_gt_b:max():item(),
  lam.significant_b_gt_a:min():item(), lam.significant_b_gt_a:max():item()))
if causal then report.text(setup.causal_positions_note) end

-- Ex. 3: the baseline ---------------------------------------------------------------------------
report.text(("## 2. Baseline\n\nRows: %s. HER slot at position %d, HIM slot at position %d.")
  :format(causal and ("the sentence %q three times (the slots are the tokens before the pronouns)"):format(full)
    or ("%q, and the same with [MASK] for her, then for him"):format(full), slot_her, slot_him))
setup.report_baseline(S, lam.clean, "The clean logits every lesion is compared with.")

-- Ex. 4: lesions layer by layer ------------------------------------------------------------------
local her_delta, him_delta = lam.signed:select(1, 0), lam.signed:select(1, 1)
report.text("## 3. Lesions, one layer at a time\n\nΔ = clean − lesioned: positive means the lesion lowered the logit.")
report.figure(figure.line {
  x = layers, markers = true, series = { { y = lam.mean_abs_delta, label = "mean |Δ| (rows 1 and 2)" } },
  title = "(a) Overall effect of the lesions per layer", xlabel = "layer", ylabel = "mean |Δ logit|",
}, { name = "magnitude_by_layer", caption = "mean |Δ| over both slots and both pronouns of the lesioned rows " ..
  "(the course's mean(|Δ[1:]|))." })
report.figure(figure.line {
  x = layers, markers = true,
  series = {
    { y = her_delta, label = ("her neurons at HER slot: Δ logit %q"):format(HER) },
    { y = him_delta, label = ("him neurons at HIM slot: Δ logit %q"):format(HIM) },
    { y = tensor.zeros({ n }), label = "0" },
  },
  title = "(b) Signed effect on the matching pronoun per layer", xlabel = "layer", ylabel = "Δ logit", legend = "below",
}, { name = "signed_by_layer", caption = "Above 0 the lesion lowered the pronoun it was meant to affect (the " ..
  "course's Δ[1,0,0] and Δ[2,1,1])." })
report.table("Per layer", { columns = { "layer", "% him > her", "% her > him", "mean |delta|", "delta her @ HER",
  "delta him @ HIM" }, data = {
  ["layer"] = lam.layers, ["% him > her"] = lam.percent_a_gt_b, ["% her > him"] = lam.percent_b_gt_a,
  ["mean |delta|"] = lam.mean_abs_delta, ["delta her @ HER"] = her_delta, ["delta him @ HIM"] = him_delta,
} })
report.tensor("delta", lam.delta, { caption = "[layers, rows 3, slots (HER, HIM), targets (her, him)] clean - lesioned" })
report.tensor("t", lam.t, { caption = "[layers, units] paired t (him - her) at the pronoun" })

-- Findings and checks ----------------------------------------------------------------------------
local contributing, lowered, opposite = 0, 0, {}
for i = 0, n - 1 do
  if lam.mean_abs_delta[i]:item() > 0 then contributing = contributing + 1 end
  for _, d in ipairs({ her_delta[i]:item(), him_delta[i]:item() }) do
    if d > 0 then lowered = lowered + 1 end
  end
  if her_delta[i]:item() < 0 or him_delta[i]:item() < 0 then opposite[#opposite + 1] = tostring(lam.layers[i + 1]) end
end
local mags = lam.mean_abs_delta
local last = n - 1
local median_mag = mags:median():item()

L:finding("layers whose lesions change the logits", "all layers contribute, unevenly",
  ("%d of %d; mean |Δ| from %s (layer %d) to %s (layer %d)"):format(contributing, n, fmt(mags:min():item()),
    lam.layers[mags:argmin():item() + 1], fmt(mags:max():item()), lam.layers[mags:argmax():item() + 1]))
L:finding("ablation lowers the matching pronoun's logit (Δ > 0)", "usually",
  ("%d of %d layer × pronoun cases"):format(lowered, 2 * n))
L:finding("layers with the opposite effect (Δ < 0)", "some, e.g. layer 18 of 24",
  #opposite > 0 and ("layers " .. table.concat(opposite, ", ")) or "none")
L:finding("the last layers", "\"quirky\"", ("last layer mean |Δ| %s vs the median layer's %s; Δ her %s, Δ him %s")
  :format(fmt(mags[last]:item()), fmt(median_mag), fmt(her_delta[last]:item()), fmt(him_delta[last]:item())))
L:finding("% of neurons selected per layer", "plotted per layer (no numbers recorded)",
  ("him > her %s–%s%%, her > him %s–%s%%"):format(fmt(lam.percent_a_gt_b:min():item()), fmt(lam.percent_a_gt_b:max():item()),
    fmt(lam.percent_b_gt_a:min():item()), fmt(lam.percent_b_gt_a:max():item())))
L:finding("statistical power", "one test sentence: low power, read with caution", "one test sentence here too")

local clean_row = lam.delta:select(1, 0):abs():max():item()
L:check("the clean row (nothing lesioned) gives Δ = 0 exactly at every layer", clean_row == 0, "max |Δ| = " .. fmt(clean_row))
local zeroed_ok = lam.zeroed:select(1, 1):equal(lam.count_b_gt_a) and lam.zeroed:select(1, 2):equal(lam.count_a_gt_b)
L:check("each layer's lesion zeroes exactly that layer's selected sets", zeroed_ok,
  ("%d + %d units over all layers"):format(lam.count_b_gt_a:sum():item(), lam.count_a_gt_b:sum():item()))
L:finish()
