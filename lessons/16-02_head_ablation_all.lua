-- lesson: 16-02 CC: token prediction after head ablations (part 1)
-- Every head of every layer zeroed, one at a time: how much does each change the probability of the
-- right answer and of a wrong one?
local lesson = require("lib.lesson")
local setup = require("lib.heads_setup")

local L = lesson.start {
  id = "16-02",
  title = "CC: token prediction after head ablations (part 1)",
  course = "part6_attention_CCtokenPredictionHeads (video 259), GPT-2 small, all 12 × 12 layer × head ablations",
  options = {
    prompt = "Berlin is the capital of",
    target = "Germany",
    foil = "France",
    batch_size = 16,   -- ablations per forward pass
  },
  summary = "The `heads` plugin zeroes each head's output (`blocks.L.attn.hook_z`, before the output " ..
    "projection) at every position, one (layer, head) per row of batched passes, and reads the target's and " ..
    "the foil's probability at the last position. Changes are percentages of the clean probability.",
}
local m = L.model
local heads = plugin("heads")
local target, foil, input, readout = setup.read(L, m)
local r = heads.ablate(m, input, { targets = { target, foil }, position = readout, batch_size = L.opts.batch_size })
local change_t = setup.percent_change(r.logprobs:select(2, 0), r.clean_logprobs[0]:item())   -- [layers, heads]
local change_f = setup.percent_change(r.logprobs:select(2, 1), r.clean_logprobs[1]:item())
local n_layer, n_head = change_t:size(0), change_t:size(1)
report.text(("%d × %d = %d ablations. Clean: P(%s) = %s, P(%s) = %s, top token %s."):format(n_layer, n_head,
  n_layer * n_head, L.opts.target, lesson.fmt(math.exp(r.clean_logprobs[0]:item())), L.opts.foil,
  lesson.fmt(math.exp(r.clean_logprobs[1]:item())), L:token_label(r.clean_top)))
for _, item in ipairs({ { change_t, L.opts.target, "target" }, { change_f, L.opts.foil, "foil" } }) do
  report.figure(figure.heatmap {
    values = item[1], palette = "diverging", title = ("%% change in P(%s) when one head is zeroed"):format(item[2]),
    xlabel = "head", ylabel = "layer", colorbar_label = "% change",
  }, { name = "change_" .. item[3], caption = "Blue: the head's output supported the token; red: it worked against it." })
end
report.figure(figure.scatter {
  x = change_t:flatten(), y = change_f:flatten(), alpha = 0.6,
  title = "Target vs foil, one point per ablated head", xlabel = "% change in P(target)", ylabel = "% change in P(foil)",
}, { name = "target_vs_foil", caption = ("Pearson r of the two changes over the heads: %.2f."):format(
  stats.pearson(change_t:flatten():unsqueeze(1), change_f:flatten()):item()) })

local flat = change_t:flatten()
local worst = flat:argmin():item()
local changed = r.top_ids:ne(r.clean_top):sum():item()
L:finding("% change in the target's probability over all ablations", "(per head; no single headline)",
  ("from %s%% (layer %d, head %d) to %s%%; |change| < 10%% for %d of %d heads"):format(lesson.fmt(flat:min():item()),
    worst // n_head, worst % n_head, lesson.fmt(flat:max():item()), flat:abs():lt(10):sum():item(), flat:numel()))
L:finding("% change in the non-target's probability", "(per head)",
  ("from %s%% to %s%%; the top token changes after %d of %d ablations"):format(lesson.fmt(change_f:min():item()),
    lesson.fmt(change_f:max():item()), changed, flat:numel()))

-- Checks: batching changes nothing (one ablation run alone); the heatmap's numbers are percentages.
local l, h = worst // n_head, worst % n_head
local alone = heads.ablate(m, input, { layers = { l }, heads = { h }, targets = { target, foil }, position = readout })
local diff = (alone.logprobs[0][0] - r.logprobs[l][h]):abs():max():item()
L:check("an ablation batched with others equals it run alone (1e-6)", diff < 1e-6, lesson.fmt(diff))
L:finish()
