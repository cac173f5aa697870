-- lesson: 15-05 Activation patching with IOI
-- "When Mike and Emma went to the cafe, Mike gave a coffee to" → Emma. Patch one block's output at
-- the last token from this run into the run where Emma repeats, layer by layer: where does the
-- answer get decided? Exact patching next to attribution patching, its one-pass estimate.
local lesson = require("lib.lesson")
local setup = require("lib.patch_setup")

local L = lesson.start {
  id = "15-05",
  title = "Activation patching with IOI",
  course = "part6_hiddenStates_patchingIOI (video 256), GPT-2 XL (48 layers)",
  options = {
    name_a = "Mike",
    name_b = "Emma",
    pairs = 24,         -- further sentence pairs (templates × names) for the spread
    seed = 15,
    batch_size = 16,
  },
  summary = "Clean: the course's sentence, whose answer is the second name (B); corrupted: the same sentence " ..
    "with B as the giver, whose answer is A. The metric is logit(B) − logit(A) at the last token; normalized, " ..
    "0 is the corrupted run and 1 the clean one. The `patch` plugin's `activation` puts the clean run's block " ..
    "output (`blocks.L.hook_resid_post`) into the corrupted run at one position, each patch in its own row of " ..
    "batched passes; `attribution` estimates every patch at once from one clean pass and one corrupted pass " ..
    "with its gradient: (a_clean − a_corrupted) · ∂metric/∂a.",
}
local m = L.model
local patch = plugin("patch")
local names = setup.names(L, m)
local P = setup.course_pair(L, m, names)
report.text(("Clean: %q → %q. Corrupted: %q → %q."):format(P.clean, P.b, P.corrupted, P.a))
local opts = { metric = P.metric, sites = "blocks.{L}.hook_resid_post", batch_size = L.opts.batch_size }

-- The course's figure: the last token, per layer.
opts.positions = { -1 }
local last = patch.activation(m, P.clean, P.corrupted, opts)
local per_layer = last.normalized:select(1, 0)
local n_layer = per_layer:numel()
report.figure(figure.line {
  x = tensor.arange(n_layer), markers = true, series = { { y = per_layer, label = "patched at the last token" } },
  title = "Block output patched from the clean run, last token", xlabel = "layer", ylabel = "normalized metric",
  ylim = { math.min(-0.2, per_layer:min():item()), math.max(1.2, per_layer:max():item()) },
}, { name = "last_token_per_layer", caption = ("0 = corrupted (%s), 1 = clean (%s)."):format(
  lesson.fmt(last.corrupted_metric), lesson.fmt(last.clean_metric)) })

-- Every position and layer, exact and attributed.
opts.positions = nil
local exact = patch.activation(m, P.clean, P.corrupted, opts)
opts.batch_size = nil
local attributed = patch.attribution(m, P.clean, P.corrupted, opts)
local tokens = m:tokens(P.corrupted)
local ylabels = {}
for l = 0, n_layer - 1 do ylabels[#ylabels + 1] = tostring(l) end
report.figure(figure.heatmap {
  values = exact.normalized, xlabels = tokens, ylabels = ylabels, palette = "diverging",
  title = "Exact activation patching (normalized metric)", xlabel = "position", ylabel = "layer",
}, { name = "exact_heatmap", caption = "Each cell is one patched (layer, position)." })
report.figure(figure.heatmap {
  values = attributed.normalized, xlabels = tokens, ylabels = ylabels, palette = "diverging",
  title = "Attribution patching (first-order estimate)", xlabel = "position", ylabel = "layer",
}, { name = "attribution_heatmap", caption = "One forward and one backward pass for all cells." })
local ex, at = exact.normalized:flatten(), attributed.normalized:flatten()
local r = stats.pearson(ex:unsqueeze(1), at):item()
report.figure(figure.scatter {
  x = ex, y = at, alpha = 0.6, title = ("Attribution vs exact patching (r = %.2f)"):format(r),
  xlabel = "exact (normalized)", ylabel = "attribution (normalized)",
}, { name = "attribution_vs_exact", caption = "On the diagonal the linear estimate is right." })
local gap = (at - ex):abs()
local _, worst = gap:topk(math.min(3, gap:numel()))
local outliers = {}
for i = 0, worst:numel() - 1 do
  local k = worst[i]:item()
  local l, p = k // exact.normalized:size(1), k % exact.normalized:size(1)
  outliers[#outliers + 1] = { l, p, tokens[p + 1], ex[k]:item(), at[k]:item() }
end
report.table("The largest disagreements", { columns = { "layer", "position", "token", "exact", "attribution" },
  rows = outliers })

-- The spread over more sentences: the course notes that one sentence gives no statistical power.
local pairs_list = setup.many(L, m, names, L.opts.pairs, L.opts.seed)
local curves = {}
for i, q in ipairs(pairs_list) do
  curves[i] = patch.activation(m, q.clean, q.corrupted, { metric = q.metric, sites = "blocks.{L}.hook_resid_post",
    positions = { -1 }, batch_size = L.opts.batch_size }).normalized:select(1, 0)
end
local stack = tensor.stack(curves)                         -- [pairs, layers]
local mean, sd = stack:mean(0), stack:std(0)
report.figure(figure.line {
  x = tensor.arange(n_layer), markers = true,
  series = { { y = mean, label = ("mean of %d pairs"):format(#curves) }, { y = mean + sd, label = "± sd", dashed = true },
    { y = mean - sd, label = "", dashed = true, color = "#888888" } },
  title = "Last-token patching over many sentence pairs", xlabel = "layer", ylabel = "normalized metric",
}, { name = "many_pairs", caption = "Templates of lessons/data/ioi_templates.txt with random one-token names." })

-- Where the answer flips: the first layer from which the patched run is more clean than corrupted.
local function flip(curve)
  for l = 0, curve:numel() - 1 do
    if curve[l]:item() > 0.5 then return l end
  end
  return nil
end
local f1, fm = flip(per_layer), flip(mean)
L:finding("no effect in early layers, then a sudden flip about halfway through the model", "flip at ~25 of 48",
  ("course sentence: above 0.5 from layer %s of %d; mean of %d pairs: from layer %s"):format(tostring(f1), n_layer,
    #curves, tostring(fm)))
L:finding("attribution patching approximates exact patching", "(the issue's comparison)",
  ("r = %s over %d (layer, position) cells; largest gap %s"):format(lesson.fmt(r), ex:numel(),
    lesson.fmt(gap:max():item())))

-- Checks: patching the clean run into itself changes nothing; attribution is exact where the metric
-- is linear in the patched activation (after the final norm).
-- (One patch per pass, so that every pass has the unpatched run's shape and rounding.)
local same = patch.activation(m, P.clean, P.clean, { metric = P.metric, sites = "blocks.{L}.hook_resid_post",
  positions = { 0, -1 }, batch_size = 1 })
L:check("patching a run into itself leaves the metric bit-identical",
  (same.metric - same.clean_metric):abs():max():item() == 0)
if m.is_causal then
  local site = "ln_final.hook_normalized"
  local e = patch.activation(m, P.clean, P.corrupted, { metric = P.metric, sites = site })
  local a = patch.attribution(m, P.clean, P.corrupted, { metric = P.metric, sites = site })
  local d = (e.metric - a.estimate):abs():max():item()
  L:check("attribution equals exact patching after the final norm, where the logits are linear (1e-4)", d < 1e-4,
    lesson.fmt(d))
end
L:finish()
