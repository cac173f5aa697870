-- lesson: 15-03 CC: noisy and shuffled BERT predictions
-- At each layer in turn, shuffle the hidden state's dimensions or add noise twice its spread, and
-- ask the model to fill in "Pay no attention to that man [MASK] the curtain!".
local lesson = require("lib.lesson")
local slot = require("lib.logit_lens_setup")

local L = lesson.start {
  id = "15-03",
  title = "CC: noisy and shuffled BERT predictions",
  course = "part6_hiddenStates_CCbertNoisyPredictions (video 254), bert-large-uncased, hooks on encoder.layer[L]",
  options = {
    sentence = "Pay no attention to that man {target} the curtain!",
    target = "behind",
    noise = 2,    -- noise sd in units of the hidden state's own std
    seed = 15,
  },
  summary = "Per layer, two edits of the block's output (`blocks.L.hook_resid_post`, the course's " ..
    "`encoder.layer[L]`) at every position, each in its own row of a batched pass beside the unedited " ..
    "sentence (`edit` plugin): the units in a random order (`permute`, the course's `randperm`), or Gaussian " ..
    "noise with sd = noise × the hidden state's std. The target's probability at the [MASK] (on a causal " ..
    "model, at the token before the word) and the correlation of the edited logits with the clean ones " ..
    "measure fidelity.",
}
local m = L.model
local edit = plugin("edit")
local S = slot.slot(m, L.opts.sentence, L.opts.target)
slot.report_slot(m, S)
local _, out = m:forward(S.ids:unsqueeze(0), { hidden_states = true })
local edits, kinds = {}, {}
for l = 0, m.n_layer - 1 do
  local sd = out.hidden_states[l + 1][0]:double():std():item()
  local site = ("blocks.%d.hook_resid_post"):format(l)
  edits[#edits + 1] = { site = site, op = "permute", seed = L.opts.seed + l }
  edits[#edits + 1] = { site = site, op = "noise", sd = L.opts.noise * sd, seed = L.opts.seed + 100 + l }
end
local r = edit.run(m, S.ids, edits, { position = S.position, targets = { S.target_id } })
local function pick(field, k) return field:index(0, tensor.arange(k, #edits, 2)) end
local p_perm, p_noise = pick(r.logprobs:select(1, 0), 0):exp(), pick(r.logprobs:select(1, 0), 1):exp()
local r_perm, r_noise = pick(r.logit_r, 0), pick(r.logit_r, 1)
local clean_p = math.exp(r.clean_logprobs[0]:item())
local x = tensor.arange(m.n_layer)
report.figure(figure.line {
  x = x, markers = true, series = { { y = p_perm, label = "dimensions shuffled" }, { y = p_noise, label = "noise" },
    { y = tensor.full({ m.n_layer }, clean_p), label = "clean", dashed = true } },
  title = ("P(%s) at the slot after editing one layer"):format(S.target_text), xlabel = "layer", ylabel = "probability",
}, { name = "target_probability", caption = "One edited layer per point." })
report.figure(figure.line {
  x = x, markers = true, series = { { y = r_perm, label = "dimensions shuffled" }, { y = r_noise, label = "noise" } },
  title = "Fidelity: correlation of the edited logits with the clean ones", xlabel = "layer", ylabel = "Pearson r",
}, { name = "fidelity", caption = "Over the vocabulary, at the slot." })
local rows = {}
for l = 0, m.n_layer - 1 do
  rows[#rows + 1] = { l, p_perm[l]:item(), L:token_label(r.top_ids[2 * l]:item()), r_perm[l]:item(), p_noise[l]:item(),
    L:token_label(r.top_ids[2 * l + 1]:item()), r_noise[l]:item() }
end
report.table("Per edited layer", { columns = { "layer", "shuffled: P(target)", "shuffled: top", "shuffled: r",
  "noise: P(target)", "noise: top", "noise: r" }, rows = rows })

local worst_noise = r_noise:argmin():item()
L:finding("shuffling the dimensions is catastrophic", "catastrophic",
  ("fidelity r %s to %s; P(target) %s → at most %s"):format(lesson.fmt(r_perm:min():item()), lesson.fmt(r_perm:max():item()),
    lesson.fmt(clean_p), lesson.fmt(p_perm:max():item())))
L:finding("noise lowers fidelity, more so at later layers", "later layers worst",
  ("fidelity r %s at layer 0, %s at the last; lowest at layer %d"):format(lesson.fmt(r_noise[0]:item()),
    lesson.fmt(r_noise[m.n_layer - 1]:item()), worst_noise))
-- Check: one permutation keeps the hidden state's spread (the units are only reordered).
L:check("a permuted hidden state keeps its spread (1e-5 relative)",
  math.abs(r.hidden_std[0][1]:item() / r.clean_std[1]:item() - 1) < 1e-5)
L:finish()
