-- lesson: 13-17 CC: Logit lens in BERT (part 2)
-- The per-layer lens has to go through BERT's whole prediction head (dense, GELU, LayerNorm, then the
-- decoder), not the decoder's weight alone. Both lenses side by side at the [MASK]: the target's
-- z-score and the top tokens per layer, and where the full head's z rises fastest (the course's
-- "phase transition").
local lesson = require("lib.lesson")
local setup = require("lib.logit_lens_setup")

local L = lesson.start {
  id = "13-17",
  title = "CC: Logit lens in BERT (part 2)",
  course = "part5_layer_CClogitBertZ (video 224), bert-large-uncased",
  options = {
    sentence = "The way you do anything is the {target} you do everything.",
    target = "way",
  },
  summary = "Every hidden state at the slot goes through the model's output head twice with the `logit_lens` " ..
    "plugin: the full head (`model.cls.predictions` on BERT: the transform's dense layer, activation and " ..
    "LayerNorm, then the decoder) and the decoder alone (`decoder.weight` and its bias, the course's wrong " ..
    "first attempt). The target's logit is z-scored over the vocabulary at each layer. On a causal model the " ..
    "word is read at the token before it and the head is the final norm then the unembedding.",
}
local m = L.model
local lens = plugin("logit_lens")
local S = setup.slot(m, L.opts.sentence, L.opts.target)
setup.report_slot(m, S)

local full = lens.lens(m, S.ids, { full_head = true, target = S.target_id, k = 3 })
local alone = lens.lens(m, S.ids, { full_head = false, target = S.target_id, k = 3 })
local layers = full.layers
local z_full = full.target_z:select(1, S.position)
local z_alone = alone.target_z:select(1, S.position)

report.figure(figure.line {
  x = tensor.arange(layers), markers = true,
  series = { { y = z_full, label = "full head" }, { y = z_alone, label = "decoder weight alone" } },
  title = ("z-score of %s at the slot, per hidden state"):format(S.target_text),
  xlabel = "hidden state (0 = embeddings)", ylabel = "z-score",
}, { name = "target_z_per_layer", caption = "The same hidden states through the whole head and through its last matrix." })

local rows = {}
local function tops(res, l)
  local t = {}
  for j = 0, 2 do t[#t + 1] = lesson.token_label(m, res.top_ids[l][S.position][j]:item()) end
  return table.concat(t, ", ")
end
for l = 0, layers - 1 do
  rows[#rows + 1] = { l, z_full[l]:item(), full.target_rank[l][S.position]:item() + 1, tops(full, l), z_alone[l]:item(),
    alone.target_rank[l][S.position]:item() + 1, tops(alone, l) }
end
report.table("Per hidden state at the slot", {
  columns = { "hidden state", "full: z", "full: rank (1 = top)", "full: top 3", "alone: z", "alone: rank (1 = top)", "alone: top 3" },
  rows = rows,
})

-- The phase transition: the largest rise of the full head's z from one hidden state to the next, and
-- the first hidden state from which the target stays the top token.
local rise = z_full:narrow(0, 1, layers - 1) - z_full:narrow(0, 0, layers - 1)
local jump = rise:argmax():item() + 1
local stays_top
for l = layers - 1, 0, -1 do
  if full.target_rank[l][S.position]:item() == 0 then stays_top = l else break end
end
local peak, peak_layer = z_full:max():item(), z_full:argmax():item()
local course_layer = math.floor(22 * m.n_layer / 24 + 0.5)   -- hidden state 22 of bert-large's 24 blocks, same depth
if m.n_layer ~= 24 then
  report.text(("The course's hidden state 22 of bert-large's 24 layers is hidden state %d of this model's %d (the " ..
    "same relative depth)."):format(course_layer, m.n_layer))
end
report.text(("## The phase transition\n\nThe full head's z rises most from hidden state %d to %d (by %s). %s"):format(
  jump - 1, jump, lesson.fmt(rise[jump - 1]:item()), stays_top and
    ("The target is the top token from hidden state %d on."):format(stays_top) or
    "The target is not the top token at the output."))

L:finding("the decoder weight alone gives unrelated top tokens (\"hash\", \"wives\")", "yes",
  ("its top token at the output: %s (the target ranks %d, 1 = top)"):format(
    tops(alone, layers - 1):match("^[^,]+"), alone.target_rank[layers - 1][S.position]:item() + 1))
L:finding("the full head: z ≈ 25–30 at layer 22", "z ≈ 25–30",
  ("z = %s at hidden state %d (the course's layer 22 here); peak %s at hidden state %d"):format(
    lesson.fmt(z_full[course_layer]:item()), course_layer, lesson.fmt(peak), peak_layer))
L:finding("layers 0–10 are noise, then a sudden phase transition", "yes",
  ("largest rise of z from hidden state %d to %d; mean z over the first half %s, at the output %s"):format(jump - 1,
    jump, lesson.fmt(z_full:narrow(0, 0, layers // 2):mean():item()), lesson.fmt(z_full[layers - 1]:item())))

local output = m:forward(S.ids:unsqueeze(0))[0][S.position]:double():log_softmax(-1)
local kl_full = full.kl[layers - 1][S.position]:item()
L:check("the full head's last row is the model's output (KL < 1e-6)", math.abs(kl_full) < 1e-6, lesson.fmt(kl_full))
local kl_alone = alone.kl[layers - 1][S.position]:item()
if S.causal then
  L:check("on a causal model the last row is the output either way (the last hidden state is normalised)",
    math.abs(kl_alone) < 1e-6, lesson.fmt(kl_alone))
else
  L:check("on a masked model the decoder alone is not the output (KL > 1e-3)", kl_alone > 1e-3, lesson.fmt(kl_alone))
end
local middle = (layers - 1) // 2
local diff = math.max(setup.lua_difference(m, full, middle), setup.lua_difference(m, alone, middle))
L:check(("both lenses equal m:unembed in Lua at hidden state %d (1e-9)"):format(middle), diff < 1e-9, lesson.fmt(diff))
L:check("the full head's last-row target log-probability is the output's (1e-9)",
  math.abs(full.target_logprob[layers - 1][S.position]:item() - output[S.target_id]:item()) < 1e-9)
L:finish()
