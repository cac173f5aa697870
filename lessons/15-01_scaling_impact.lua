-- lesson: 15-01 Downstream impact of early-layer scaling
-- Scale one early block's output by factors from 0.5 to 1.5 and follow the change through every
-- later hidden state.
local lesson = require("lib.lesson")
local setup = require("lib.edit_setup")

local L = lesson.start {
  id = "15-01",
  title = "Downstream impact of early-layer scaling",
  course = "part6_hiddenStates_scalingImpact (video 252), GPT-2 small, a hook on transformer.h[2]",
  options = {
    prompt = "Duct tape will very useful after the apocalypse.",
    layer = -1,     -- -1: the course's block 2 of 12 at the same relative depth
    steps = 21,     -- factors linspace(0.5, 1.5, steps)
  },
  summary = "The course's hook on `transformer.h[2]` returns `(hs * factor, *rest)`: the block's output scaled. " ..
    "Here the `edit` plugin scales `blocks.L.hook_resid_post`, one factor per row of a batched pass with the " ..
    "unedited prompt as its reference row, and returns, per factor, the norm of every hidden state's change " ..
    "at the last token (hidden state l + 1 is block l's output).",
}
local m = L.model
local edit = plugin("edit")
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(2, 12, "block")
local factors = tensor.linspace(0.5, 1.5, L.opts.steps, { dtype = "float64" })
local values = {}
for i = 0, factors:numel() - 1 do values[#values + 1] = factors[i]:item() end
local site = ("blocks.%d.hook_resid_post"):format(layer)
local edits = setup.sweep(values, function(f) return { site = site, op = "scale", factor = f } end)
edits[#edits + 1] = { site = site, op = "scale", factor = 1 }   -- the control: must change nothing
local r = edit.run(m, L.opts.prompt, edits)
local control = r.hidden_delta[#values]
local delta = r.hidden_delta:narrow(0, 0, #values)           -- [factors, hidden states]
local states = delta:size(1)

local series = {}
for _, i in ipairs({ 0, (#values - 1) // 4, (#values - 1) * 3 // 4, #values - 1 }) do
  series[#series + 1] = { y = delta[i], label = ("factor %.2f"):format(values[i + 1]) }
end
report.figure(figure.line {
  x = tensor.arange(states), markers = true, series = series,
  title = ("Change of every hidden state when block %d's output is scaled"):format(layer),
  xlabel = "hidden state (0 = embeddings)", ylabel = "‖Δ hidden state‖ at the last token",
}, { name = "delta_per_layer", caption = ("Hidden state %d is the scaled block's output."):format(layer + 1) })
report.figure(figure.heatmap {
  values = delta, title = "‖Δ hidden state‖ per factor and hidden state", xlabel = "hidden state", ylabel = "factor",
  ylabels = (function()
    local t = {}
    for _, v in ipairs(values) do t[#t + 1] = ("%.2f"):format(v) end
    return t
  end)(), colorbar_label = "norm",
}, { name = "delta_heatmap", caption = "Rows are factors, columns hidden states." })

local before = delta:narrow(1, 0, layer + 1):abs():max():item()
local at_scaled = delta:select(1, layer + 1)
local last, second_last = delta:select(1, states - 1), delta:select(1, states - 2)
L:finding("Δ = 0 before the scaled block, then grows with depth", "0, then grows nonlinearly",
  ("max |Δ| before: %s; at factor 1.5: %s at the scaled block, %s two blocks later"):format(lesson.fmt(before),
    lesson.fmt(at_scaled[#values - 1]:item()), lesson.fmt(delta[#values - 1][math.min(states - 1, layer + 3)]:item())))
L:finding("a slight drop at the final block", "slight drop",
  ("factor 1.5: %s at the last hidden state vs %s before it (the last one is after the final norm)"):format(
    lesson.fmt(last[#values - 1]:item()), lesson.fmt(second_last[#values - 1]:item())))

L:check("hidden states before the scaled block do not change", before == 0, lesson.fmt(before))
L:check("scaling by exactly 1 changes nothing, bit for bit", control:abs():max():item() == 0 and r.kl[#values]:item() == 0)
-- At the scaled block itself the change is |f − 1| times the hidden state's norm.
local _, out = m:forward(L.opts.prompt, { hidden_states = true })
local norm = out.hidden_states[layer + 1][0][-1]:double():norm():item()
local want = math.abs(values[1] - 1) * norm
local got = delta[0][layer + 1]:item()
L:check(("at the scaled block, ‖Δ‖ = |f − 1| · ‖h‖ for f = %.2f (1e-4 relative)"):format(values[1]),
  math.abs(got - want) < 1e-4 * want, ("%s vs %s"):format(lesson.fmt(got, 6), lesson.fmt(want, 6)))
L:finish()
