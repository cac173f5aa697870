-- lesson: 14-03 CC: replacing attention, MLP and hidden states
-- Three kinds of edit in three sentences: one head's keys zeroed, noise added to half the MLP
-- neurons of one token, and a block's output scaled by 0.1 or 10; how the hidden states' spread
-- follows each edit through the later layers.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "14-03",
  title = "CC: replacing attention, MLP and hidden states",
  course = "part6_how2modify_CCchangingActivations (video 251), GPT-2 small, 3 padded sentences",
  options = {
    token = 4,
    seed = 14,
  },
  summary = "The course edits `h[3].attn.c_attn`'s K slice of head 3 (start index n_embd + 2·64, the third " ..
    "head), adds randn + 10 to every second neuron of token 4 in `h[5].mlp.c_fc`, and scales `h[8]`'s output " ..
    "by 0.1 or 10. Here: `blocks.L.attn.hook_k` head 2 zeroed, `blocks.L.mlp.hook_pre` noise with mean 10 on " ..
    "the even neurons of the token, `blocks.L.hook_resid_post` scaled, at the same relative depths, each edit " ..
    "in its own row beside the unedited sentence (`edit` plugin). The spread of a hidden state is its " ..
    "standard deviation over units at the last token, shown relative to the unedited run.",
}
local m = L.model
local edit = plugin("edit")
local sentences = { "The quick brown fox jumps over the lazy dog.", "I wish coffee would taste like chocolate.",
  "Duct tape will be very useful after the apocalypse." }
report.text("Substitutions: the course's three padded sentences are in its notebook; this run uses three of its " ..
  "own. The course does not fix what the K slice becomes; this run zeroes it.")
local l_attn = L:course_layer(3, 12, "attention layer")
local l_mlp = L:course_layer(5, 12, "MLP layer")
local l_scale = L:course_layer(8, 12, "scaled block")
if l_scale > m.n_layer - 3 and m.n_layer >= 3 then
  -- Recovery needs a block after the scaled one whose hidden state is not yet the final norm's.
  l_scale = m.n_layer - 3
  report.text(("On this %d-layer model no block would follow the scaled one before the final norm; block %d is " ..
    "scaled instead."):format(m.n_layer, l_scale))
end
local _, cache = m:run_with_cache(sentences[1], { names = { ("blocks.%d.mlp.hook_pre"):format(l_mlp),
  ("blocks.%d.attn.hook_k"):format(l_attn) } })
local width = cache[("blocks.%d.mlp.hook_pre"):format(l_mlp)]:size(-1)
local k_heads = cache[("blocks.%d.attn.hook_k"):format(l_attn)]:size(2)
local head = math.min(2, k_heads - 1)
local even = {}
for u = 0, width - 1, 2 do even[#even + 1] = u end
local edits = {
  { site = ("blocks.%d.attn.hook_k"):format(l_attn), op = "zero", heads = { head } },
  { site = ("blocks.%d.mlp.hook_pre"):format(l_mlp), op = "noise", sd = 1, offset = 10, seed = L.opts.seed,
    positions = { L.opts.token }, units = even },
  { site = ("blocks.%d.hook_resid_post"):format(l_scale), op = "scale", factor = 0.1 },
  { site = ("blocks.%d.hook_resid_post"):format(l_scale), op = "scale", factor = 10 },
}
local names = { ("K of head %d zeroed, layer %d"):format(head, l_attn),
  ("noise (mean 10) on even MLP neurons of token %d, layer %d"):format(L.opts.token, l_mlp),
  ("block %d's output × 0.1"):format(l_scale), ("block %d's output × 10"):format(l_scale) }

local ratio_sum, kl_sum = nil, tensor.zeros({ #edits }, { dtype = "float64" })
for _, s in ipairs(sentences) do
  local n = m:tokenize(s):numel()
  if n <= L.opts.token then error(("sentence %q has no token %d"):format(s, L.opts.token), 0) end
  local r = edit.run(m, s, edits)
  local ratio = r.hidden_std / r.clean_std:unsqueeze(0)     -- [edits, hidden states]
  ratio_sum = ratio_sum and ratio_sum + ratio or ratio
  kl_sum = kl_sum + r.kl
end
local ratio = ratio_sum / #sentences
local series = {}
for i, name in ipairs(names) do series[i] = { y = ratio[i - 1], label = name } end
report.figure(figure.line {
  x = tensor.arange(m.n_layer + 1), markers = true, series = series, logy = true,
  title = "Spread of each hidden state relative to the unedited run", xlabel = "hidden state (0 = embeddings)",
  ylabel = "std over units (edited / clean)",
}, { name = "spread_per_layer", caption = ("Mean over %d sentences, last token."):format(#sentences) })
local rows = {}
for i, name in ipairs(names) do
  rows[i] = { name, ratio[i - 1][l_scale + 1]:item(), ratio[i - 1][m.n_layer - 1]:item(), ratio[i - 1][m.n_layer]:item(),
    (kl_sum[i - 1] / #sentences):item() }
end
report.table("Relative spread", { columns = { "edit", ("scaled block's output (hidden state %d)"):format(l_scale + 1),
  ("last block before the final norm (hidden state %d)"):format(m.n_layer - 1), "output (after the final norm)",
  "mean KL" }, rows = rows })

L:finding("×0.1 drops the variability at that layer, which recovers later", "drops, then recovers",
  ("relative spread %s at the scaled block, %s at hidden state %d, the last before the final norm"):format(
    lesson.fmt(ratio[2][l_scale + 1]:item()), lesson.fmt(ratio[2][m.n_layer - 1]:item()), m.n_layer - 1))
L:finding("×10 explodes the variability, but the final layer compresses it", "explodes, then compressed",
  ("relative spread %s at the scaled block, %s after the final norm"):format(lesson.fmt(ratio[3][l_scale + 1]:item()),
    lesson.fmt(ratio[3][m.n_layer]:item())))
L:check("scaling a block's output scales its spread by the factor (1e-4 relative)",
  math.abs(ratio[2][l_scale + 1]:item() - 0.1) < 1e-5 and math.abs(ratio[3][l_scale + 1]:item() - 10) < 1e-3,
  ("%s and %s"):format(lesson.fmt(ratio[2][l_scale + 1]:item(), 6), lesson.fmt(ratio[3][l_scale + 1]:item(), 6)))
L:finish()
