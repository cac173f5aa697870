-- lesson: 16-06 Attention head patching in IOI
-- Patch the heads' outputs (before the output projection) of a whole layer from one IOI run into
-- the other, layer by layer, next to patching the layer's hidden state: which moves the answer?
local lesson = require("lib.lesson")
local setup = require("lib.patch_setup")

local L = lesson.start {
  id = "16-06",
  title = "Attention head patching in IOI",
  course = "part6_attention_IOI (video 263), GPT-2 small (also GPT-2 medium)",
  options = {
    name_a = "Sam",
    name_b = "Sally",
    template = 2,        -- lessons/data/ioi_templates.txt line (2: the course's park sentence)
    pairs = 24,
    seed = 16,
  },
  summary = "Run A is the clean sentence (answer B), run B the corrupted one (answer A); the metric is logit(B) − " ..
    "logit(A) at the last token, normalized so that 0 is run B and 1 is run A. The `patch` plugin copies run A's " ..
    "`blocks.L.attn.hook_z` (every head, every position: the course's pre-`c_proj` outputs) into run B, one " ..
    "layer per row of a batched pass (`per_head`, `together`); beside it, the layer's whole hidden state " ..
    "(`blocks.L.hook_resid_post`) at every position, and at the last token only.",
}
local m = L.model
local patch = plugin("patch")
local names = setup.names(L, m)
local one = {}
for _, n in ipairs(names) do one[n] = true end
local a, b = L.opts.name_a, L.opts.name_b
if not (one[a] and one[b]) then
  report.text(("%s and %s are not both one token on this model; this run uses %s and %s."):format(a, b, names[1], names[2]))
  a, b = names[1], names[2]
end
local templates = L:data_lines("ioi_templates.txt")
local P = setup.pair(m, templates[math.min(L.opts.template, #templates)], a, b)
report.text(("Run A: %q → %q. Run B: %q → %q."):format(P.clean, P.b, P.corrupted, P.a))

local heads_all = patch.activation(m, P.clean, P.corrupted, { metric = P.metric, per_head = true, together = true })
local resid_all = patch.activation(m, P.clean, P.corrupted, { metric = P.metric, sites = "blocks.{L}.hook_resid_post",
  together = true })
local resid_last = patch.activation(m, P.clean, P.corrupted, { metric = P.metric, sites = "blocks.{L}.hook_resid_post",
  positions = { -1 } })
local h, ra, rl = heads_all.normalized:select(1, 0), resid_all.normalized:select(1, 0), resid_last.normalized:select(1, 0)
local n_layer = h:numel()
report.figure(figure.line {
  x = tensor.arange(n_layer), markers = true,
  series = { { y = h, label = "all heads of the layer (hook_z)" }, { y = rl, label = "hidden state, last token" },
    { y = ra, label = "hidden state, every position" } },
  title = "Patching run A into run B, one layer at a time", xlabel = "layer", ylabel = "normalized metric",
}, { name = "heads_vs_hidden", caption = "0 = run B, 1 = run A." })

-- The same over many sentence pairs.
local curves = {}
for i, q in ipairs(setup.many(L, m, names, L.opts.pairs, L.opts.seed)) do
  curves[i] = patch.activation(m, q.clean, q.corrupted, { metric = q.metric, per_head = true, together = true })
    .normalized:select(1, 0)
end
local stack = tensor.stack(curves)
local mean, sd = stack:mean(0), stack:std(0)
local rows = {}
for l = 0, n_layer - 1 do rows[#rows + 1] = { l, h[l]:item(), rl[l]:item(), ra[l]:item(), mean[l]:item(), sd[l]:item() } end
report.table("Per layer (normalized metric)", {
  columns = { "layer", "heads (this sentence)", "hidden, last token", "hidden, all positions",
    ("heads, mean of %d pairs"):format(#curves), "sd" },
  rows = rows,
})

L:finding("patching a whole layer's heads shifts the metric only slightly, unlike the hidden state", "slightly",
  ("largest |normalized| for heads %s (mean over pairs %s) vs %s for the last token's hidden state"):format(
    lesson.fmt(h:abs():max():item()), lesson.fmt(mean:abs():max():item()), lesson.fmt(rl:abs():max():item())))

-- Check: patching every head at every position of the last layer equals patching that layer's
-- attention output (what the heads feed), as a Lua hook.
local last = n_layer - 1
local _, cache = m:run_with_cache(P.clean, { names = ("blocks.%d.hook_attn_out"):format(last) })
local clean_out = cache[("blocks.%d.hook_attn_out"):format(last)]
local logits = m:forward(P.corrupted, { hooks = { [("blocks.%d.hook_attn_out"):format(last)] = function()
  return clean_out
end } })
local row = logits[0][-1]:double()
local ib, ia = m:tokenize(P.b, { add_special_tokens = false })[0]:item(), m:tokenize(P.a, { add_special_tokens = false })[0]:item()
local by_hook = row[ib]:item() - row[ia]:item()
local diff = math.abs(by_hook - heads_all.metric[last][0]:item())
L:check("all heads patched = the attention output patched, as a Lua hook (1e-4)", diff < 1e-4, lesson.fmt(diff))
L:finish()
