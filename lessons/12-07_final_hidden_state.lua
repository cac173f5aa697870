-- lesson: 12-07 Clarification of the final hidden_states output
-- The last entry of hidden_states is not the last block's output but ln_f of it: hook every block,
-- compare each output with its hidden state, and apply ln_f by hand to the last one.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-07",
  title = "Clarification of the final hidden_states output",
  course = "part5_neurons_hookVsFinalHS (video 191), GPT-2 small",
  options = { prompt = "hello" },
  summary = "A hook on the last block stores its output; `hidden_states[n_layer]` is compared with it " ..
    "before and after the final LayerNorm (`ln_final.hook_normalized`, Hugging Face's `transformer.ln_f`), " ..
    "and with `ln_f` applied by hand from its weights, as the course does. Every earlier block's output is " ..
    "compared with its hidden state too.",
}
local m = L.model
if not m.is_causal then error("lesson 12-07 needs a causal model with a final norm (got " .. m.architecture .. ")", 0) end
local last = m.n_layer - 1
local middle = math.max(0, last - 1)

local stored = { blocks = {} }
local _, out = m:forward(L.opts.prompt, {
  hidden_states = true,
  hooks = {
    ["blocks.*.hook_resid_post"] = function(act, ctx) stored.blocks[ctx.layer] = act:clone() end,
    ["ln_final.hook_normalized"] = function(act) stored.ln_f = act:clone() end,
  },
})
local final = out.hidden_states[m.n_layer][0][-1]   -- [d_model], the last token
local block_out = stored.blocks[last][0][-1]
local before = (block_out - final):abs():max():item()
local after = (stored.ln_f[0][-1] - final):abs():max():item()
local middle_diff = (stored.blocks[middle][0][-1] - out.hidden_states[middle + 1][0][-1]):abs():max():item()

-- The course's step 3: model.transformer.ln_f(block_out), here from the final norm's weights and
-- the epsilon of config.json: LayerNorm, or RMSNorm (Llama, Mistral, Qwen2: no mean, no bias).
local d = m.d_model
local hf = require("lib.hf_paths")
local paths = hf.of(m, "12-07")
local eps = hf.config_number(m, paths.eps_key, paths.eps_default)
local ln_w = m:parameter(paths.final_norm .. ".weight")
local by_hand
if paths.final_norm_rms then
  by_hand = block_out / math.sqrt((block_out * block_out):mean():item() + eps) * ln_w
else
  by_hand = block_out:layer_norm({ d }, ln_w, m:parameter(paths.final_norm .. ".bias"), eps)
end
local by_hand_diff = (by_hand - final):abs():max():item()

local norm_kind = paths.final_norm_rms and "RMSNorm" or "LayerNorm"
if paths.final_norm ~= "transformer.ln_f" then
  report.text(("On this model the course's `ln_f` is `%s`, a%s %s with eps %g (from config.json); " ..
    "`ln_f` below names it."):format(paths.final_norm, norm_kind == "RMSNorm" and "n" or "", norm_kind, eps))
end
report.text(("## Differences at the last token of %q"):format(L.opts.prompt))
report.table("Differences", {
  columns = { "comparison", "max |difference|" },
  rows = {
    { ("block %d output vs hidden_states[%d]"):format(last, m.n_layer), before },
    { ("ln_f(block %d output) vs hidden_states[%d] (the ln_f hook)"):format(last, m.n_layer), after },
    { ("ln_f by hand from its weights vs hidden_states[%d]"):format(m.n_layer), by_hand_diff },
    { ("block %d output vs hidden_states[%d]"):format(middle, middle + 1), middle_diff },
  },
})
local x = tensor.arange(d):float()
report.figure(figure.line {
  x = x,
  series = {
    { y = block_out - final, label = "block output - hidden_states[-1]" },
    { y = stored.ln_f[0][-1] - final, label = "ln_f(block output) - hidden_states[-1]" },
  },
  title = "Last token, every dimension", xlabel = "dimension", ylabel = "difference",
},
  { name = "differences", caption = ("Only the block output after ln_f (%s) equals the final hidden state.")
    :format(norm_kind) })

-- Every block: its hooked output against hidden_states[l + 1], and the norms a laminar plot shows.
local per_block, worst_earlier = {}, 0
local hook_norm, hs_norm = {}, {}
for l = 0, last do
  local diff = (stored.blocks[l][0] - out.hidden_states[l + 1][0]):abs():max():item()
  per_block[#per_block + 1] = diff
  if l < last then worst_earlier = math.max(worst_earlier, diff) end
  hook_norm[#hook_norm + 1] = stored.blocks[l][0]:norm(2, -1):mean():item()
  hs_norm[#hs_norm + 1] = out.hidden_states[l + 1][0]:norm(2, -1):mean():item()
end
local blocks_x = tensor.arange(m.n_layer)
report.figure(figure.line {
  x = blocks_x, markers = true,
  series = { { y = per_block, label = "max |block output - hidden_states[l+1]|" } },
  title = "Hooked block output vs hidden_states, every block", xlabel = "block l", ylabel = "max |difference|",
}, { name = "per_block", caption = "Zero for every block but the last, whose hidden state is after ln_f." })
report.figure(figure.line {
  x = blocks_x, markers = true,
  series = {
    { y = hook_norm, label = "hooked block output" },
    { y = hs_norm, label = "hidden_states[l+1]" },
  },
  title = "Mean norm per token, by block", xlabel = "block l", ylabel = "L2 norm",
}, { name = "laminar_norms", caption = "A laminar profile from hidden_states bends at the last layer " ..
  "because ln_f rescales it; hooks give the raw last block." })

L:finding("last block output minus hidden_states[-1]", "non-zero", lesson.fmt(before))
L:finding("ln_f(last block output) minus hidden_states[-1]", "zero", lesson.fmt(after))
L:finding("earlier block output minus its hidden state", "zero", lesson.fmt(middle_diff))
L:finding("the last layer looks different in laminar plots", "ln_f rescales it",
  ("mean norm: hook %s, hidden_states %s"):format(lesson.fmt(hook_norm[#hook_norm]), lesson.fmt(hs_norm[#hs_norm])))
L:check("hidden_states[n_layer] = ln_f(last block output)", after == 0, "max |diff| " .. lesson.fmt(after))
L:check("ln_f applied by hand reproduces hidden_states[n_layer] (to 1e-5)", by_hand_diff < 1e-5,
  "max |diff| " .. lesson.fmt(by_hand_diff))
L:check("hidden_states[n_layer] differs from the raw last block output", before > 1e-4, "max |diff| " .. lesson.fmt(before))
L:check("hidden_states[L+1] = output of block L for an earlier block", middle_diff == 0, "max |diff| " .. lesson.fmt(middle_diff))
L:check("the same holds for every block before the last", worst_earlier == 0, "max |diff| " .. lesson.fmt(worst_earlier))
L:finish()
