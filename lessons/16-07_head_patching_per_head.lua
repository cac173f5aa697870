-- lesson: 16-07 CC: head and token patching in IOI
-- One head at the last token patched at a time, for every layer and head, over many IOI sentence
-- pairs: how large are single-head effects, and how many sentences would a test need to see them?
local lesson = require("lib.lesson")
local setup = require("lib.patch_setup")

local L = lesson.start {
  id = "16-07",
  title = "CC: head and token patching in IOI",
  course = "part6_attention_CCperHeadIOI (video 264), GPT-2 large (36 × 20 heads), last token only",
  options = {
    pairs = 48,        -- sentence pairs (templates × random one-token names)
    seed = 7,
    alpha = 0.05,
    batch_size = 16,
  },
  summary = "For every sentence pair (lessons/data/ioi_templates.txt with random names), the `patch` plugin " ..
    "copies one head's output (`blocks.L.attn.hook_z`) at the last token from the clean run into the corrupted " ..
    "run, every (layer, head) in its own row of batched passes (`per_head`, `positions = {-1}`). Per head: the " ..
    "mean normalized effect over pairs, a one-sample t-test against 0 (`stats.ttest_1samp`) with FDR " ..
    "(`stats.fdr`), and the number of pairs a test would need to find the head's mean effect with 80% power.",
}
local m = L.model
local patch = plugin("patch")
local names = setup.names(L, m)
local effects = {}
for i, q in ipairs(setup.many(L, m, names, L.opts.pairs, L.opts.seed)) do
  effects[i] = patch.activation(m, q.clean, q.corrupted, { metric = q.metric, per_head = true, positions = { -1 },
    batch_size = L.opts.batch_size }).normalized
end
local E = tensor.stack(effects)                  -- [pairs, layers, heads]
local n = E:size(0)
local mean = E:mean(0)
local t = stats.ttest_1samp(E, 0)
local fdr = stats.fdr(t.p:flatten(), { alpha = L.opts.alpha })
local significant = fdr.rejected:sum():item()
-- Pairs needed for 80% power at alpha 0.05 (two-sided, normal approximation): ((1.96 + 0.84) / d)².
local d = (mean / E:std(0)):abs():flatten()
local needed = ((1.96 + 0.8416) / d):pow(2):ceil()
local median_needed = needed:median():item()

report.figure(figure.heatmap {
  values = mean, palette = "diverging", title = ("Mean normalized effect of patching one head, %d pairs"):format(n),
  xlabel = "head", ylabel = "layer", colorbar_label = "normalized metric",
}, { name = "mean_effect", caption = "0 = the corrupted run; 1 would be the clean run's answer." })
report.figure(figure.heatmap {
  values = t.t, palette = "diverging", title = "t-value of each head's effect against 0",
  xlabel = "head", ylabel = "layer", colorbar_label = "t",
}, { name = "t_values", caption = ("One-sample t-tests over %d pairs; %d heads significant after FDR at %g."):format(n,
  significant, L.opts.alpha) })
report.figure(figure.histogram {
  series = { { values = needed:clamp(1, 100000):log() / math.log(10), label = "heads" } }, bins = 30,
  title = "Pairs needed to detect each head's effect (80% power)", xlabel = "log10(pairs)", ylabel = "heads",
}, { name = "pairs_needed", caption = "From each head's effect size d = |mean| / sd." })
local flat = mean:flatten()
local top = flat:abs():argmax():item()
local n_head = mean:size(1)
report.table("Summary", {
  columns = { "measure", "value" },
  rows = { { "heads", flat:numel() }, { "largest |mean effect| (layer, head)", ("%s (%d, %d)"):format(
      lesson.fmt(flat[top]:item()), top // n_head, top % n_head) }, { "mean |effect|", flat:abs():mean():item() },
    { ("significant after FDR (alpha %g)"):format(L.opts.alpha), significant },
    { "median pairs needed for 80% power", median_needed } },
})

L:finding("targeted (single head, single token) manipulations have small effects", "small",
  ("mean |effect| %s of the clean−corrupted gap; largest %s (layer %d, head %d)"):format(
    lesson.fmt(flat:abs():mean():item()), lesson.fmt(flat[top]:item()), top // n_head, top % n_head))
L:finding("hundreds to thousands of samples are needed for statistics", "hundreds to thousands",
  ("with %d pairs %d of %d heads are significant; the median head needs %s pairs for 80%% power"):format(n,
    significant, flat:numel(), lesson.fmt(median_needed)))

-- Check: the batched per-head patch of one pair equals it run alone.
local q = setup.many(L, m, names, 1, L.opts.seed)[1]
local alone = patch.activation(m, q.clean, q.corrupted, { metric = q.metric, per_head = true, positions = { -1 },
  layers = { top // n_head }, batch_size = 1 })
local diff = (alone.normalized[0] - effects[1][top // n_head]):abs():max():item()
L:check("one layer's heads patched alone equal the batched run (1e-5)", diff < 1e-5, lesson.fmt(diff))
L:finish()
