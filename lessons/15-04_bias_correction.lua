-- lesson: 15-04 CC: measure and correct BERT's bias
-- "The engineer informed the client that [MASK] would need more time.": how much more likely is
-- "he" than "she", and does mixing the slot's hidden state with the one from a sentence that says
-- "she" change the prediction?
local lesson = require("lib.lesson")
local slot = require("lib.logit_lens_setup")

local L = lesson.start {
  id = "15-04",
  title = "CC: measure and correct BERT's bias",
  course = "part6_hiddenStates_CCbertBiases (video 255), bert-large-uncased",
  options = {
    sentence = "The engineer informed the client that {target} would need more time.",
    causal_other = "The woman said to the client that {target} would need more time.",
    weights = { 0.5, 0.9 },   -- share of the other sentence's hidden state in the mix
  },
  summary = "The bias score is log P(he) − log P(she) at the slot ([MASK]; on a causal model the token before " ..
    "the pronoun). The `edit` plugin mixes the slot's hidden state (`blocks.L.hook_resid_post`) with the one " ..
    "at the same place of another sentence, (1 − w) · this + w · other, one layer and weight per row of a " ..
    "batched pass. On a masked model the other sentence is the same one with \"she\" filled in, as the " ..
    "course; on a causal model, whose state before the pronoun cannot see it, a sentence whose subject is " ..
    "a woman (`--causal-other`).",
}
local m = L.model
local edit = plugin("edit")
local S = slot.slot(m, L.opts.sentence, "he")
slot.report_slot(m, S)
local other_ids, other_position
if S.causal then
  local O = slot.slot(m, L.opts.causal_other, "she")
  other_ids, other_position = O.ids, O.position
else
  other_ids = m:tokenize((L.opts.sentence:gsub("{target}", "she")))
  other_position = S.position
end
report.text(("Mixed with %q at position %d."):format(m:decode(other_ids, { skip_special = true }), other_position))
local pronouns = { "he", "she", "they" }
local ids = {}
for i, p in ipairs(pronouns) do
  ids[i] = slot.slot(m, L.opts.sentence, p).target_id
end
local edits, labels = {}, {}
for l = 0, m.n_layer - 1 do
  for _, w in ipairs(L.opts.weights) do
    edits[#edits + 1] = { site = ("blocks.%d.hook_resid_post"):format(l), op = "mix", other = other_ids, weight = w,
      positions = { S.position }, other_position = other_position }
    labels[#labels + 1] = { l, w }
  end
end
local r = edit.run(m, S.ids, edits, { position = S.position, targets = ids })
local clean = r.clean_logprobs
local bias_clean = (clean[0] - clean[1]):item()
report.table("Clean prediction at the slot", { columns = { "pronoun", "probability" },
  rows = { { "he", math.exp(clean[0]:item()) }, { "she", math.exp(clean[1]:item()) }, { "they", math.exp(clean[2]:item()) },
    { "bias score log P(he) − log P(she)", bias_clean } } })
local series_she, series_bias = {}, {}
for k, w in ipairs(L.opts.weights) do
  local rows_idx = tensor.arange(k - 1, #edits, #L.opts.weights)
  local lp = r.logprobs:index(0, rows_idx)               -- [layers, 3]
  series_she[k] = { y = lp:select(1, 1):exp(), label = ("P(she), %d%% mixed"):format(math.floor(w * 100 + 0.5)) }
  series_bias[k] = { y = lp:select(1, 0) - lp:select(1, 1), label = ("%d%% mixed"):format(math.floor(w * 100 + 0.5)) }
end
series_bias[#series_bias + 1] = { y = tensor.full({ m.n_layer }, bias_clean), label = "clean", dashed = true }
report.figure(figure.line { x = tensor.arange(m.n_layer), markers = true, series = series_she,
  title = "P(she) after mixing at one layer", xlabel = "layer", ylabel = "probability" },
  { name = "p_she", caption = "The slot's hidden state mixed with the other sentence's at that layer." })
report.figure(figure.line { x = tensor.arange(m.n_layer), markers = true, series = series_bias,
  title = "Bias score after mixing", xlabel = "layer", ylabel = "log P(he) − log P(she)" },
  { name = "bias", caption = "Below 0: \"she\" is now the more likely pronoun." })

local layer = L:course_layer(10, 24)
local k90 = #L.opts.weights
local row = layer * #L.opts.weights + (k90 - 1)
L:finding("P(he) > 60%, P(she) ≈ 2% in the clean sentence", "he > 60%, she ≈ 2%",
  ("he %s, she %s, they %s"):format(lesson.fmt(math.exp(clean[0]:item())), lesson.fmt(math.exp(clean[1]:item())),
    lesson.fmt(math.exp(clean[2]:item()))))
L:finding(("a %d%% mix at the course's layer 10 flips the prediction to she"):format(math.floor(L.opts.weights[k90] * 100 + 0.5)),
  "she → ~100%, bias +3 → −11",
  ("layer %d: P(she) %s, bias %s → %s"):format(layer, lesson.fmt(math.exp(r.logprobs[row][1]:item())),
    lesson.fmt(bias_clean), lesson.fmt((r.logprobs[row][0] - r.logprobs[row][1]):item())))
-- Check: a mix of weight 0 changes nothing, bit for bit.
local z = edit.run(m, S.ids, { { site = ("blocks.%d.hook_resid_post"):format(layer), op = "mix", other = other_ids,
  weight = 0, positions = { S.position }, other_position = other_position } }, { position = S.position })
L:check("a mix of weight 0 changes nothing", z.kl[0]:item() == 0 and z.hidden_delta:abs():max():item() == 0)
L:finish()
