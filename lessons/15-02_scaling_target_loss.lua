-- lesson: 15-02 CC: hidden-state scaling and token loss
-- Scale one layer's hidden state by 0.6, for every layer in turn: how does the loss of the expected
-- next word change, and how far do the logits move?
local lesson = require("lib.lesson")
local setup = require("lib.edit_setup")

local L = lesson.start {
  id = "15-02",
  title = "CC: hidden-state scaling and token loss",
  course = "part6_hiddenStates_CCscalingTargetLoss (video 253), GPT-2 medium, all 24 layers at 0.6",
  options = {
    prompt = "I have no special talent. I am only passionately",
    target = "curious",
    factor = 0.6,
  },
  summary = "The course's `{layer: factor}` dict scales one block's output; here the `edit` plugin scales " ..
    "`blocks.L.hook_resid_post` by the factor, one layer per row of a batched pass. Per layer: the target's " ..
    "loss (−log-softmax) at the last token next to the clean loss, the correlation of the scaled run's logits " ..
    "with the clean ones over the vocabulary, and the KL divergence from the clean prediction.",
}
local m = L.model
local edit = plugin("edit")
local target, note = require("lib.heads_setup").token(m, L.opts.target)
if note then report.text(note) end
local layers = {}
for l = 0, m.n_layer - 1 do layers[#layers + 1] = l end
local r = edit.run(m, L.opts.prompt, setup.sweep(layers, function(l)
  return { site = ("blocks.%d.hook_resid_post"):format(l), op = "scale", factor = L.opts.factor }
end), { targets = { target } })
local loss = -r.logprobs:select(1, 0)
local clean_loss = -r.clean_logprobs[0]:item()
local x = tensor.arange(m.n_layer)
report.figure(figure.line {
  x = x, markers = true,
  series = { { y = loss, label = ("scaled by %g"):format(L.opts.factor) },
    { y = tensor.full({ m.n_layer }, clean_loss), label = "clean", dashed = true } },
  title = ("Loss of %q when one layer's output is scaled"):format(L.opts.target), xlabel = "layer", ylabel = "−log P (nats)",
}, { name = "target_loss", caption = "Below the dashed line, scaling made the target more likely." })
report.figure(figure.line {
  x = x, markers = true, series = { { y = r.logit_r, label = "r(clean, scaled logits)" } },
  title = "Correlation of the scaled run's logits with the clean ones", xlabel = "layer", ylabel = "Pearson r",
}, { name = "logit_correlation", caption = "Over the whole vocabulary, at the last token." })
local rows = {}
for l = 0, m.n_layer - 1 do
  rows[#rows + 1] = { l, loss[l]:item(), loss[l]:item() - clean_loss, r.logit_r[l]:item(), r.kl[l]:item(),
    L:token_text(r.top_ids[l]:item()) }
end
report.table("Per layer", { columns = { "layer", "loss", "Δ loss", "logit r", "KL", "top token" }, rows = rows })

local lower = loss:lt(clean_loss):sum():item()
L:finding("scaling shifts the logits globally; they stay highly correlated", "high correlation",
  ("logit r from %s to %s"):format(lesson.fmt(r.logit_r:min():item()), lesson.fmt(r.logit_r:max():item())))
L:finding("the loss usually decreases slightly (like a temperature change)", "slightly lower",
  ("lower than clean at %d of %d layers; mean Δ loss %s nats"):format(lower, m.n_layer,
    lesson.fmt((loss - clean_loss):mean():item())))

-- Check: one layer's edit as a Lua hook.
local l = m.n_layer // 2
local logits = m:forward(L.opts.prompt, { hooks = { [("blocks.%d.hook_resid_post"):format(l)] = function(h)
  return h * L.opts.factor
end } })
local want = -logits[0][-1]:double():log_softmax(-1)[target]:item()
L:check(("layer %d's loss equals the same scaling as a Lua hook (1e-5)"):format(l), math.abs(want - loss[l]:item()) < 1e-5,
  ("%s vs %s"):format(lesson.fmt(loss[l]:item(), 6), lesson.fmt(want, 6)))
L:finish()
