-- lesson: 15-06 Skip a layer
-- Make one block pass its input straight through (its output = its input) and watch the hidden
-- states: the skipped block's output equals the previous hidden state, and the rest of the model
-- carries on from there.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "15-06",
  title = "Skip a layer",
  course = "part6_hiddenStates_skipAlayer (video 257), GPT-2 small, a forward hook on transformer.h[5]",
  options = {
    prompt = "There is a lot of liquid water on planet Earth.",
    layer = -1,   -- -1: the course's layer 5 of 12 at the same relative depth
  },
  summary = "The course's hook on `transformer.h[5]` returns the block's input as its output. Here the `edit` " ..
    "plugin's `skip` op replaces `blocks.L.hook_resid_post` with the same block's `hook_resid_pre`, in a row " ..
    "of a batched pass beside the unedited prompt. Note the index offset: block L's output is " ..
    "`hidden_states[L + 1]`, so the skip shows as hidden state L + 1 equal to hidden state L.",
}
local m = L.model
local edit = plugin("edit")
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(5, 12, "block")
local last_block = layer == m.n_layer - 1
if last_block then
  report.text("The skipped block is the last one: Hugging Face's last hidden state is after the final norm, so " ..
    "it is the final norm of the previous hidden state rather than equal to it.")
end
local r = edit.run(m, L.opts.prompt, { { site = ("blocks.%d.hook_resid_post"):format(layer), op = "skip" } })
local change = r.block_change[0]          -- [n_layer]: ‖h[l + 1] − h[l]‖ in the skipped run
local delta = r.hidden_delta[0]           -- [n_layer + 1]: ‖h[l] − clean h[l]‖
report.figure(figure.line {
  x = tensor.arange(m.n_layer), markers = true, series = { { y = change, label = "‖h[l + 1] − h[l]‖, skipped run" } },
  title = ("What each block adds, with block %d skipped"):format(layer), xlabel = "block", ylabel = "norm at the last token",
}, { name = "block_change", caption = ("Block %d adds %s."):format(layer, lesson.fmt(change[layer]:item())) })
report.figure(figure.line {
  x = tensor.arange(m.n_layer + 1), markers = true, series = { { y = delta, label = "‖h − clean h‖" } },
  title = "Difference from the clean run", xlabel = "hidden state (0 = embeddings)", ylabel = "norm at the last token",
}, { name = "delta", caption = ("Largest difference up to hidden state %d: %s; at the output: %s."):format(layer,
  lesson.fmt(delta:narrow(0, 0, layer + 1):abs():max():item()), lesson.fmt(delta[m.n_layer]:item())) })
L:finding("the hidden state at the skipped block equals the previous one (Δ = 0)", "Δ = 0",
  ("‖hidden_states[%d] − hidden_states[%d]‖ = %s; the prediction %s"):format(layer + 1, layer,
    lesson.fmt(change[layer]:item()), r.top_ids[0]:item() == r.clean_top and "is unchanged" or
    ("changes from %s to %s"):format(L:token_label(r.clean_top), L:token_label(r.top_ids[0]:item()))))
L:finding("watch the block vs hidden_states index offset", "offset of 1",
  ("block %d's output is hidden_states[%d]"):format(layer, layer + 1))
if not last_block then
  L:check("the skipped block adds exactly nothing", change[layer]:item() == 0, lesson.fmt(change[layer]:item()))
end
L:check("hidden states before the skip are the clean ones", delta:narrow(0, 0, layer + 1):abs():max():item() == 0)
-- The same as a Lua hook pair.
local saved
local _, out = m:forward(L.opts.prompt, { hidden_states = true, hooks = {
  [("blocks.%d.hook_resid_pre"):format(layer)] = function(x) saved = x:clone() end,
  [("blocks.%d.hook_resid_post"):format(layer)] = function() return saved end } })
local last = out.hidden_states[m.n_layer][0][-1]:double()
local _, clean = m:forward(L.opts.prompt, { hidden_states = true })
local want = (last - clean.hidden_states[m.n_layer][0][-1]:double()):norm():item()
L:check("the last hidden state's change equals the skip written as Lua hooks (1e-4)",
  math.abs(want - delta[m.n_layer]:item()) < 1e-4, ("%s vs %s"):format(lesson.fmt(delta[m.n_layer]:item(), 6), lesson.fmt(want, 6)))
L:finish()
