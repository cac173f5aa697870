-- lesson: 17-02 Statistics-based lesioning of MLP neurons
-- Find MLP neurons that prefer "him" or "her" with a paired t-test (+ FDR) at the pronoun, then zero
-- them after the nonlinearity where a test sentence's pronoun is predicted, and watch the target logits.
local lesson = require("lib.lesson")
local setup = require("lib.tlesion_setup")

local L = lesson.start {
  id = "17-02",
  title = "Statistics-based lesioning of MLP neurons",
  course = "part6_mlp_ttest2ablateMLP (video 266), BERT base (12 layers, 3072 MLP units), layer 9, " ..
    "54 him/her sentence pairs, \"Robert helped Lucy with [MASK] project, and she thanked [MASK] for his hard work.\"",
  options = {
    layer = -1,                  -- -1: the course's layer 9 of 12 at the same relative depth
    pairs = "him_her_pairs.txt", -- lessons/data: "him" sentence <tab> the same frame with "her"
    test = "paired",             -- or "independent" (Student's t, pooled variance)
    alpha = 0.05,                -- FDR (Benjamini-Hochberg)
    sentence = "Robert helped Lucy with {her} project, and she thanked {him} for his hard work.",  -- the course's
    max_units = -1,              -- units lesioned per set and layer, the largest |t|; -1: 5% of the units, 0: all
  },
  summary = "Part 1 selects neurons: each pair's activations at the pronoun (`blocks.L.mlp.hook_pre`, before " ..
    "the nonlinearity; the course hooks `intermediate.dense`) go into a paired t-test per neuron (him − her), " ..
    "corrected by FDR; significant t > 0 are *him neurons*, t < 0 *her neurons*. The `tlesion` plugin does " ..
    "this inside native hooks. Part 2 reads the her/him logits at the two pronoun slots of a test sentence. " ..
    "Part 3 zeroes the her neurons at the HER slot (row 1) and the him neurons at the HIM slot (row 2) after " ..
    "the nonlinearity (`blocks.L.mlp.hook_post`) and reports Δ = clean − lesioned; row 0 is lesioned nowhere. " ..
    "On a masked model (BERT) the slots are [MASK]s, as in the course. On a causal model (GPT-2, GPT-Neo) a " ..
    "slot is the token *before* the pronoun, whose next-token logits predict it: reading there is the same as " ..
    "running the prompt that ends right before the pronoun (\"... with\" → \" her\"), which is checked below.",
}
report.text("Substitution: the course's 54 him/her sentence pairs are written out in its notebook, which this " ..
  "project cannot reach; this run reads `lessons/data/" .. L.opts.pairs .. "`" .. (L.opts.pairs == "him_her_pairs.txt" and
  ", 54 pairs of our own in the same form (a \"him\" sentence and the same frame with \"her\")" or "") .. ".")
local m = L.model
local tl = plugin("tlesion")
local fmt = lesson.fmt
-- The pronouns, the test rows and their slots (see lib/tlesion_setup.lua).
local S = setup.new(m, tl, L.opts.sentence)
local causal, HER, HIM = S.causal, S.her, S.him
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:layer(9, 12)
local pre, post = ("blocks.%d.mlp.hook_pre"):format(layer), ("blocks.%d.mlp.hook_post"):format(layer)

-- Part 1: selection ------------------------------------------------------------------------------
local him_rows, her_rows = L:data_pairs(L.opts.pairs)
local cap = setup.unit_cap(m, L.opts.max_units)
local sel = tl.select(m, him_rows, her_rows, {
  target_a = HIM, target_b = HER, layers = { layer }, test = L.opts.test, alpha = L.opts.alpha, max_units = cap,
})
local units = sel.units
-- Significant after FDR, and the lesion sets: at most `cap` of them each, the largest |t|.
local sig_him, sig_her = sel.significant_a_gt_b[0]:item(), sel.significant_b_gt_a[0]:item()
local n_him, n_her = sel.count_a_gt_b[0]:item(), sel.count_b_gt_a[0]:item()

-- The same activations captured from Lua, for the histograms and to check the plugin's statistics.
local function at_targets(rows, positions)
  local _, cache = m:run_with_cache(rows, { names = { pre, post } })
  local function gather(act)                         -- [n, pos, units] -> [n, units] at each row's target
    local shape = act:shape()
    local rows = tensor.arange(shape[1], { device = act:device() }) * shape[2] + positions:to(act:device())
    return act:reshape({ shape[1] * shape[2], shape[3] }):index(0, rows)
  end
  return gather(cache[pre]), gather(cache[post])
end
local him_pre, him_post = at_targets(him_rows, sel.positions_a)
local her_pre, her_post = at_targets(her_rows, sel.positions_b)
local all_pre, all_post = tensor.cat({ him_pre, her_pre }), tensor.cat({ him_post, her_post })
local ref = L.opts.test == "independent" and stats.ttest_ind(him_pre, her_pre) or stats.ttest_rel(him_pre, her_pre)
local t = sel.t[0]
local t_diff = (t - ref.t):abs():max():item()
-- The two passes batch the sentences differently, so their float32 activations differ by rounding
-- (BLAS kernels depend on the batch shape); t inherits that relative error, nothing more.
local t_rel = ((t - ref.t):abs() / ref.t:abs():clamp(1)):max():item()

report.text(("## 1. Selecting him and her neurons at layer %d\n\n%d sentence pairs from `%s`; the pronoun is " ..
  "token %q (him) / %q (her). `%s`, %d units, %s test, FDR at %s.")
  :format(layer, sel.n_a, L.opts.pairs, HIM, HER, pre, units, L.opts.test, fmt(L.opts.alpha)))
local function moments(x)
  local z = x:double():flatten()
  local c = z - z:mean()
  local sd = (c * c):mean():sqrt()
  return ((c / sd) ^ 3):mean():item(), ((c / sd) ^ 4):mean():item() - 3
end
local skew, kurt = moments(all_pre)
local near_pre = all_pre:abs():lt(0.1):double():mean():item()
local near_post = all_post:abs():lt(0.1):double():mean():item()
local span = math.max(all_pre:abs():max():item(), 1e-3)
local edges = tensor.linspace(-span, span, 101)
report.figure(figure.histogram {
  series = { { values = all_pre, label = "before the nonlinearity (hook_pre)" },
             { values = all_post, label = "after (hook_post)" } },
  edges = edges, logy = true,
  title = ("Layer %d MLP activations at the pronoun, %d sentences"):format(layer, 2 * sel.n_a),
  xlabel = "activation", ylabel = "count (log scale)",
}, { name = "pre_post_histogram", caption = ("Before the nonlinearity: skewness %s and excess kurtosis %s (a normal " ..
  "distribution, which a t-test assumes, has 0 and 0). %s%% of the values lie within 0.1 of 0 before GELU and %s%% " ..
  "after it. (The course bins -10..10; this model's range sets the bins here.)"):format(fmt(skew), fmt(kurt),
  fmt(100 * near_pre), fmt(100 * near_post)) })

local class = sel.a_gt_b[0]:long() - sel.b_gt_a[0]:long()   -- +1 him neuron, -1 her neuron, 0 neither
report.figure(figure.scatter {
  x = tensor.arange(units), y = t, color = class, palette = "diverging", vmin = -1, vmax = 1, size = 1.5,
  colorbar_label = "+1 him > her, -1 her > him",
  title = ("t per neuron (him − her), layer %d: %d him > her, %d her > him (FDR %s)")
    :format(layer, n_him, n_her, fmt(L.opts.alpha)),
  xlabel = "neuron (0-based)", ylabel = "t",
}, { name = "t_per_neuron", caption = "Every neuron's t statistic; red points are significant him neurons, " ..
  "blue ones her neurons, after Benjamini-Hochberg over the layer's units." })
report.table("Selected neurons", { columns = { "set", "significant (FDR)", "% of units", "lesioned" }, rows = {
  { "him > her (t > 0)", sig_him, 100 * sig_him / units, n_him },
  { "her > him (t < 0)", sig_her, 100 * sig_her / units, n_her },
} })
report.text(("%d of the %d units pass FDR (%.0f%%). The course's lesion removes a few selective neurons, not most of " ..
  "a layer, so the lesion sets are capped at %s per set, the units with the largest |t|: %d him and %d her " ..
  "neurons are lesioned. `-- --max-units 0` lesions every significant unit.")
  :format(sig_him + sig_her, units, 100 * (sig_him + sig_her) / units,
    cap > 0 and ("%d units (%s)"):format(cap, L.opts.max_units < 0 and "5% of the layer" or "--max-units") or "no limit",
    n_him, n_her))
if causal then report.text(setup.causal_positions_note) end

-- Part 2: the test sentence and its baseline logits -----------------------------------------------
-- Causal: one sentence three times, a slot is the token before the pronoun (its next-token
-- logits); masked: the sentence, then HER masked, then HIM masked.
local texts, slot_her, slot_him = S.texts, S.slot_her, S.slot_him
local row_names = causal and { "sentence (nothing lesioned)", "sentence, her neurons at HER slot",
  "sentence, him neurons at HIM slot" } or { "clean text (nothing lesioned)", "HER masked, her neurons lesioned",
  "HIM masked, him neurons lesioned" }
local slot_names = setup.slot_names

local out = tl.lesion(m, texts, {
  targets = { HER, HIM }, readout = { slot_her, slot_him }, site = "blocks.{L}.mlp.hook_post",
  lesions = {
    { row = 1, position = slot_her, layer = layer, neurons = sel.b_gt_a[0], target = HER },
    { row = 2, position = slot_him, layer = layer, neurons = sel.a_gt_b[0], target = HIM },
  },
})

report.text(("## 2. Baseline: target logits at the pronoun slots\n\nTest texts (%s):\n\n%s\n\nSlots: HER at " ..
  "position %d, HIM at position %d (0-based tokens%s).")
  :format(causal and "a causal model reads the token before each pronoun" or "masked, as the course",
    table.concat((function()
      local lines = {}
      for i, text in ipairs(texts) do lines[i] = ("- row %d: `%s`"):format(i - 1, text) end
      return lines
    end)(), "\n"), slot_her, slot_him, causal and "; the pronouns follow them" or ""))
setup.report_baseline(S, out.clean, "A model that tracks who is who gives \"her\" the higher logit at the " ..
  "HER slot and \"him\" at the HIM slot." .. (causal and " (The three rows are the same sentence here, so " ..
  "one is shown.)" or ""))

-- Part 3: the lesions ------------------------------------------------------------------------------
local categories3, d_her, d_him = {}, {}, {}
for r = 0, 2 do
  for k = 0, 1 do
    categories3[#categories3 + 1] = ("row %d %s"):format(r, slot_names[k + 1])
    d_her[#d_her + 1] = out.delta[r][k][0]:item()
    d_him[#d_him + 1] = out.delta[r][k][1]:item()
  end
end
report.text(("## 3. Lesions after the nonlinearity\n\nRow 1: %d her neurons zeroed at the HER slot; row 2: %d him " ..
  "neurons zeroed at the HIM slot; row 0: nothing. Δ = clean − lesioned, so Δ > 0 means the lesion lowered " ..
  "the logit."):format(n_her, n_him))
report.figure(figure.bar {
  categories = categories3,
  series = { { values = d_her, label = "Δ logit " .. ("%q"):format(HER) }, { values = d_him, label = "Δ logit " .. ("%q"):format(HIM) } },
  title = "Δ logit = clean − lesioned", xlabel = "row and slot", ylabel = "Δ logit",
}, { name = "lesion_delta", caption = "Row 0 is the clean run (all zero). Row 1's HER slot and row 2's HIM slot " ..
  "are where the lesions act; the course saw the matching pronoun's logit drop there." ..
  (causal and " In a causal model a lesion at a slot cannot reach an earlier slot: row 2's HER slot stays 0." or "") })
local rows_color = tensor.arange(3):view({ 3, 1, 1 }):expand({ 3, 2, 2 }):double()
report.figure(figure.scatter {
  x = out.clean:flatten(), y = out.lesioned:flatten(), color = rows_color:flatten(), size = 2, colorbar_label = "row",
  title = "Clean vs lesioned logits (both pronouns, both slots, every row)", xlabel = "clean logit", ylabel = "lesioned logit",
}, { name = "clean_vs_lesioned", caption = "Points on the diagonal did not move; the lesions' effects are the " ..
  "small offsets from it." })
report.table("Logits", { columns = { "row", "slot", "target", "clean", "lesioned", "delta" }, rows = (function()
  local rows = {}
  for r = 0, 2 do
    for k = 0, 1 do
      for j, target in ipairs({ HER, HIM }) do
        rows[#rows + 1] = { row_names[r + 1], slot_names[k + 1], target, out.clean[r][k][j - 1]:item(),
          out.lesioned[r][k][j - 1]:item(), out.delta[r][k][j - 1]:item() }
      end
    end
  end
  return rows
end)() })
report.tensor("delta", out.delta, { caption = "[rows 3, slots (HER, HIM), targets (her, him)] clean - lesioned" })

-- Findings and checks ----------------------------------------------------------------------------
local her_effect, him_effect = out.signed[0]:item(), out.signed[1]:item()
local clean_row = out.delta[0]:abs():max():item()
local scale = out.clean:abs():mean():item()

L:finding("pre-nonlinearity activations", "roughly Gaussian (suits a t-test)",
  ("skewness %s, excess kurtosis %s"):format(fmt(skew), fmt(kurt)))
L:finding("the nonlinearity makes activations sparse", "yes (GELU)",
  ("|x| < 0.1: %s%% before, %s%% after"):format(fmt(100 * near_pre), fmt(100 * near_post)))
L:finding(("him / her neurons at layer %d (FDR)"):format(layer), "counts shown in the plot title",
  ("%d him > her, %d her > him of %d (lesioned: %d and %d)"):format(sig_him, sig_her, units, n_him, n_her))
L:finding("lesioning her neurons at the HER slot lowers the \"her\" logit", "yes (Δ > 0)",
  ("Δ = %s (%s)"):format(fmt(her_effect), her_effect > 0 and "lowered" or her_effect < 0 and "raised" or "unchanged"))
L:finding("lesioning him neurons at the HIM slot lowers the \"him\" logit", "yes (Δ > 0)",
  ("Δ = %s (%s)"):format(fmt(him_effect), him_effect > 0 and "lowered" or him_effect < 0 and "raised" or "unchanged"))
L:finding("size of the effects", "small but consistent",
  ("|Δ| %s and %s against a mean |logit| of %s"):format(fmt(math.abs(her_effect)), fmt(math.abs(him_effect)), fmt(scale)))
L:finding("clean sentence (nothing lesioned)", "Δ = 0", ("max |Δ| = %s"):format(fmt(clean_row)))

L:check("the clean run (nothing lesioned) gives Δ = 0 exactly", clean_row == 0, "max |Δ| of row 0 = " .. fmt(clean_row))
local none = tl.lesion(m, texts, { targets = { HER, HIM }, readout = { slot_her, slot_him } })
L:check("lesioning nothing at all gives Δ = 0 exactly", none.max_abs_delta == 0, "max |Δ| = " .. fmt(none.max_abs_delta))
L:check("the plugin's in-hook t equals stats." .. (L.opts.test == "independent" and "ttest_ind" or "ttest_rel") ..
  " on activations captured with run_with_cache (to float32 rounding)", t_rel < 1e-5,
  ("max |difference| %s, relative %s"):format(fmt(t_diff), fmt(t_rel)))
L:check("the lesion sets are the significant units with the largest |t|, at most the cap", (function()
  for _, set in ipairs({ { sel.a_gt_b[0], sig_him }, { sel.b_gt_a[0], sig_her } }) do
    local n = set[1]:sum():item()
    if n ~= (cap > 0 and math.min(cap, set[2]) or set[2]) then return false end
  end
  local p_adj = sel.p_adjusted[0]
  return p_adj:masked_select(sel.a_gt_b[0]):le(L.opts.alpha):all() and p_adj:masked_select(sel.b_gt_a[0]):le(L.opts.alpha):all()
end)(), ("%d + %d lesioned"):format(n_him, n_her))
L:check("zeroed units: the selected sets, once each", out.zeroed[1]:item() == n_her and out.zeroed[2]:item() == n_him,
  ("row 1: %d, row 2: %d"):format(out.zeroed[1]:item(), out.zeroed[2]:item()))
if causal then
  -- Reading the full sentence at the slot is running the prompt that ends before the pronoun.
  local prefix = L.opts.sentence:match("^(.-){her}"):gsub("%s+$", "")
  local alone = tl.lesion(m, { prefix }, { targets = { HER, HIM } }).clean[0][0]   -- after the prompt's last token
  local diff = (alone - out.clean[0][0]):abs():max():item()
  L:check(("the HER slot's logits equal those after the prompt %q"):format(prefix), diff < 1e-4, "max |difference| " .. fmt(diff))
end
L:finish()
