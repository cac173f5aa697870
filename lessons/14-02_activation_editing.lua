-- lesson: 14-02 Activation editing: code implementations
-- Edit the queries of one attention layer in "I wish coffee would taste like chocolate.": replace
-- them with one global vector, or zero a slice at one token, and see what changes downstream.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "14-02",
  title = "Activation editing: code implementations",
  course = "part6_how2modify_activationManipulation (video 250), GPT-2 small, hooks on h[3].attn.c_attn",
  options = {
    prompt = "I wish coffee would taste like chocolate.",
    layer = -1,    -- -1: the course's layer 3 of 12 at the same relative depth
    token = 4,     -- the position whose query slice is zeroed (the course's [:, 4, :10])
  },
  summary = "The course's hook on `h[3].attn.c_attn` returns a modified QKV tensor: Q replaced with one global " ..
    "vector (`linspace(-1, .7)` over its units) at every token, or Q zeroed at `[:, 4, :10]` (token 4, the " ..
    "first 10 query units: head 0's first 10 dimensions). The `edit` plugin does both at " ..
    "`blocks.L.attn.hook_q` ([batch, pos, head, d_head], so the global vector covers heads × d_head), each " ..
    "in its own row beside the unedited prompt. The course also shows a hook installed on every layer that " ..
    "acts only on its target layer; a hook on the one site does the same here.",
}
local m = L.model
local edit = plugin("edit")
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(3, 12)
local site = ("blocks.%d.attn.hook_q"):format(layer)
local _, cache = m:run_with_cache(L.opts.prompt, { names = site })
local q = cache[site]                                     -- [1, pos, heads, d_head]
local heads, d_head, n = q:size(2), q:size(3), q:size(1)
local token = math.min(L.opts.token, n - 1)
local units = {}
for u = 0, math.min(10, d_head) - 1 do units[#units + 1] = u end
local global = tensor.linspace(-1, 0.7, heads * d_head)
if heads * d_head ~= 768 then
  report.text(("The global vector has this model's %d query units (%d heads × %d) where GPT-2 small's has 768."):format(
    heads * d_head, heads, d_head))
end
local r = edit.run(m, L.opts.prompt, {
  { site = site, op = "set", vector = global },
  { site = site, op = "zero", positions = { token }, heads = { 0 }, units = units },
})
local names = { "Q := linspace(−1, 0.7) at every token", ("Q[%d, :%d] := 0"):format(token, #units) }
local rows = {}
for i = 0, 1 do
  rows[#rows + 1] = { names[i + 1], r.kl[i]:item(), r.logit_r[i]:item(), L:token_label(r.top_ids[i]:item()),
    r.hidden_delta[i][m.n_layer]:item() }
end
report.text(("Clean prediction after the prompt: %s."):format(L:token_label(r.clean_top)))
report.table(("Edits of layer %d's queries"):format(layer), {
  columns = { "edit", "KL from clean", "logit r", "top token", "‖Δ last hidden state‖" }, rows = rows })
report.figure(figure.line {
  x = tensor.arange(m.n_layer + 1), markers = true,
  series = { { y = r.hidden_delta[0], label = names[1] }, { y = r.hidden_delta[1], label = names[2] } },
  title = "Change of every hidden state at the last token", xlabel = "hidden state (0 = embeddings)", ylabel = "norm",
}, { name = "delta_per_layer", caption = ("Largest change before block %d: %s."):format(layer,
  lesson.fmt(r.hidden_delta:narrow(1, 0, layer + 1):abs():max():item())) })

L:finding("replacing Q with a global vector changes the output", "(demonstration)",
  ("KL %s, top token %s"):format(lesson.fmt(r.kl[0]:item()), L:token_label(r.top_ids[0]:item())))
L:finding("zeroing a small slice of one token's query", "(demonstration)",
  ("KL %s at the last token: in a causal model only token %d's own attention reads its query, so a later " ..
    "token's prediction cannot change"):format(lesson.fmt(r.kl[1]:item()), token))

-- Checks: the global replacement as a Lua hook; nothing before the edited layer moves.
local logits = m:forward(L.opts.prompt, { hooks = { [site] = function(x)
  return global:view({ 1, 1, heads, d_head }):expand(x:shape())
end } })
local lp = logits[0][-1]:double():log_softmax(-1)
local top = lp:argmax():item()
L:check("the global-vector edit gives the same prediction as the same edit as a Lua hook", top == r.top_ids[0]:item(),
  L:token_label(top))
L:check("hidden states before the edited block do not move", r.hidden_delta:narrow(1, 0, layer + 1):abs():max():item() == 0)
L:finish()
