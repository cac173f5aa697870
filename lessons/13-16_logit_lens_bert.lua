-- lesson: 13-16 CC: Logit lens in BERT (part 1)
-- How strongly does BERT predict the masked word? The output logits at the [MASK] z-scored over the
-- vocabulary, the target word's z-score and the tokens that stand out; then the course's first
-- per-layer lens, every hidden state times the decoder's weight alone (part 2, lesson 13-17, shows
-- why that is not BERT's head).
local lesson = require("lib.lesson")
local setup = require("lib.logit_lens_setup")

local L = lesson.start {
  id = "13-16",
  title = "CC: Logit lens in BERT (part 1)",
  course = "part5_layer_CClogitBertZ (video 223), bert-large-uncased",
  options = {
    sentence = "The way you do anything is the {target} you do everything.",
    target = "way",
    top = 10,   -- tokens listed by z-score
  },
  summary = "The sentence is read with `[MASK]` where `{target}` stands; the model's logits at the mask are " ..
    "z-scored over the vocabulary (minus their mean, over their standard deviation), which makes models and " ..
    "layers with different logit scales comparable: a z of 10 is ten standard deviations above the typical " ..
    "token. The per-layer lens multiplies each hidden state by the decoder's weight (plus its bias), as the " ..
    "course's part 1 does, through the `logit_lens` plugin with `full_head = false`. On a causal model the " ..
    "word is read at the token before it, whose next-token logits predict it, and the lens without the head " ..
    "leaves out the final norm.",
}
local m = L.model
local lens = plugin("logit_lens")
local S = setup.slot(m, L.opts.sentence, L.opts.target)
setup.report_slot(m, S)

-- The output at the slot, z-scored over the vocabulary.
local logits = m:forward(S.ids:unsqueeze(0))[0][S.position]:double()   -- [vocab]
local z = (logits - logits:mean()) / logits:std()
local target_z = z[S.target_id]:item()
local rank = z:gt(z[S.target_id]):sum():item() + 1   -- 1 = the top token
local top_z, top_ids = z:topk(L.opts.top)
local rows = {}
for i = 0, L.opts.top - 1 do
  rows[#rows + 1] = { i + 1, lesson.token_label(m, top_ids[i]:item()), top_z[i]:item(), logits[top_ids[i]:item()]:item() }
end
report.text(("## The output at the slot\n\n%q, read at position %d. The target %s has z = %s and rank %d " ..
  "(1 = the top token) among %d tokens."):format(S.text, S.position, S.target_text, lesson.fmt(target_z), rank,
  z:numel()))
report.table("Tokens with the largest z-scores at the slot", { columns = { "rank", "token", "z", "logit" }, rows = rows })
report.figure(figure.histogram {
  series = { { values = z, label = "every token" } }, bins = 80, logy = true,
  title = ("z-scored logits at the slot; the target %s has z = %.1f"):format(S.target_text, target_z),
  xlabel = "z-score", ylabel = "tokens",
}, { name = "z_histogram", caption = ("%.1f%% of the tokens have |z| < 2; %d have z > 3."):format(
  100 * z:abs():lt(2):double():mean():item(), z:gt(3):sum():item()) })

-- The course's part-1 lens: each hidden state through the decoder's weight alone.
local res = lens.lens(m, S.ids, { full_head = false, target = S.target_id, k = 3 })
local layers = res.layers
local z_per_layer = res.target_z:select(1, S.position)       -- [layers]
report.figure(figure.line {
  x = tensor.arange(layers), markers = true,
  series = { { y = z_per_layer, label = "decoder weight alone" } },
  title = ("z-score of %s at the slot, per hidden state"):format(S.target_text),
  xlabel = "hidden state (0 = embeddings)", ylabel = "z-score",
}, { name = "target_z_per_layer", caption = "Hidden state l times the decoder's weight, z-scored over the vocabulary." })
local lens_rows = {}
for l = 0, layers - 1 do
  local tops = {}
  for j = 0, 2 do tops[#tops + 1] = lesson.token_label(m, res.top_ids[l][S.position][j]:item()) end
  lens_rows[#lens_rows + 1] = { l, z_per_layer[l]:item(), res.target_rank[l][S.position]:item() + 1,
    table.concat(tops, ", ") }
end
report.table("The lens without the head at the slot", {
  columns = { "hidden state", "target z", "target rank (1 = top)", "top 3 tokens" }, rows = lens_rows,
})

L:finding(("%q reaches z > 10 at the output"):format(L.opts.target), "yes (z > 10)",
  ("z = %s, rank %d"):format(lesson.fmt(target_z), rank))
L:finding("z of the target through the decoder alone, per layer", "(part 2: noise, misleading tokens)",
  ("from %s at hidden state 0 to %s at the last; top token at the last: %s"):format(lesson.fmt(z_per_layer[0]:item()),
    lesson.fmt(z_per_layer[layers - 1]:item()), lesson.token_label(m, res.top_ids[layers - 1][S.position][0]:item())))

local middle = (layers - 1) // 2
local diff = setup.lua_difference(m, res, middle)
L:check(("the plugin equals m:unembed in Lua at hidden state %d (1e-9)"):format(middle), diff < 1e-9, lesson.fmt(diff))
local full = lens.lens(m, S.ids, { target = S.target_id, k = 1 })
local z_full = full.target_z[layers - 1][S.position]:item()
L:check("the full head's last row gives the output's z-score (1e-9)", math.abs(z_full - target_z) < 1e-9,
  ("%s vs %s"):format(lesson.fmt(z_full), lesson.fmt(target_z)))
L:check("the z-scores have mean 0 and standard deviation 1", math.abs(z:mean():item()) < 1e-9 and
  math.abs(z:std():item() - 1) < 1e-9)
L:finish()
