-- lesson: 12-06 Relation between hooks and hidden_states
-- Hooks on a block's attention and MLP outputs rebuild the residual stream: hidden_states[L+1] =
-- hidden_states[L] + attn_out + mlp_out, exactly, in a pre-LayerNorm model (GPT-2, GPT-Neo).
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-06",
  title = "Relation between hooks and output.hidden_states",
  course = "part5_neurons_hookVsHiddenStates (video 190), GPT-2 small, block 10",
  options = {
    layer = -1,          -- -1: the course's block 10 of 12 at the same relative depth
    sentence = "Plants make fantastic pets because they don't leave a mess after you feed them.",  -- the course's
    thresh = 30,         -- elements where any of the four matrices exceeds |thresh| are left out
  },
  summary = "Forward hooks on the attention output projection and the MLP output projection of one block " ..
    "store their outputs (the deltas each adds to the residual stream); `hidden_states` gives the stream " ..
    "before and after the block. The block's input plus both deltas is its output.",
}
local m = L.model
if m.n_layer < 2 then error("lesson 12-06 needs at least 2 layers", 0) end
-- In causal models hidden_states[n_layer] is after the final norm (lesson 12-07), so the last
-- block that can be rebuilt from hidden_states is n_layer - 2 (BERT has no final norm).
local last_block = m.is_causal and m.n_layer - 2 or m.n_layer - 1
local layer = L.opts.layer >= 0 and L.opts.layer or L:layer(10, 12)
local clamped = layer > last_block
layer = math.min(layer, last_block)

-- The Hugging Face output projections (as the course hooks them), per architecture (lib/hf_paths).
local hf = require("lib.hf_paths")
local paths = hf.of(m, "12-06")
local attn_path, mlp_path = hf.path(paths, "attn_proj", layer), hf.path(paths, "mlp_proj", layer)
local pre = "blocks." .. layer .. "."

local stored = {}
local function keep(key) return function(act) stored[key] = act[0]:clone() end end  -- [pos, d_model]
local hooks = {
  [attn_path] = keep("attn_proj"),
  [mlp_path] = keep("mlp_proj"),
  [pre .. "hook_attn_out"] = keep("attn_alias"),
  [pre .. "hook_mlp_out"] = keep("mlp_alias"),
}
if not m.is_causal then   -- BERT: the sums hold before each LayerNorm
  hooks[pre .. "hook_resid_mid"] = keep("resid_mid")
  hooks[pre .. "ln1.hook_normalized"] = keep("ln1")
  hooks[pre .. "hook_resid_post"] = keep("resid_post")
end
local _, out = m:forward(L.opts.sentence, { hidden_states = true, hooks = hooks, strict = true })

local hs_curr = out.hidden_states[layer][0]        -- [pos, d_model]: the block's input
local hs_next = out.hidden_states[layer + 1][0]    -- its output
local attn_delta, mlp_delta = stored.attn_proj, stored.mlp_proj   -- dropout is the identity in eval mode
local reconstruction = hs_curr + attn_delta + mlp_delta
local function max_diff(a, b) return (a - b):abs():max():item() end
local recon_diff = max_diff(reconstruction, hs_next)
local alias_diff = math.max(max_diff(stored.attn_alias, attn_delta), max_diff(stored.mlp_alias, mlp_delta))

-- Elements where any of the four matrices is extreme (mostly the first token) are left out.
local T = hs_curr:size(0)
local thresh = L.opts.thresh
local outlier = hs_curr:abs():gt(thresh) + hs_next:abs():gt(thresh) + attn_delta:abs():gt(thresh) +
    mlp_delta:abs():gt(thresh)
local keep_mask = outlier:eq(0)                      -- [pos, d_model] bool
local n_out = keep_mask:numel() - keep_mask:sum():item()
local n_out_first = keep_mask[0]:numel() - keep_mask[0]:sum():item()

local function masked(t) return t:masked_select(keep_mask) end
local function panel(x, y, name, title, xlabel, ylabel, caption)
  local xs, ys = masked(x), masked(y)
  local r = stats.pearson(xs, ys):item()
  report.figure(figure.scatter {
    x = xs, y = ys, size = 1, alpha = 0.5,
    title = ("%s (r = %.4f)"):format(title, r), xlabel = xlabel, ylabel = ylabel,
  }, { name = name, caption = caption })
  return r
end

report.text(("## Block %d of %d%s\n\nHooks: `%s` and `%s` (the portable aliases `%shook_attn_out` and " ..
  "`%shook_mlp_out` name the same outputs; max |difference| %s). Text: %q (%d tokens). Elements where " ..
  "any matrix has |x| > %g are left out of the plots: %d of %d, %d of them at token 0.")
  :format(layer, m.n_layer, clamped and (" (the last block that still has a hidden state before ln_f)") or "",
    attn_path, mlp_path, pre, pre, lesson.fmt(alias_diff), L.opts.sentence, T, thresh, n_out, keep_mask:numel(),
    n_out_first))

local r_layers = panel(hs_curr, hs_next, "hs_curr_vs_hs_next", ("hidden_states[%d] vs hidden_states[%d]"):format(layer, layer + 1),
  "block input", "block output", "Consecutive hidden states: each block adds a small change to the residual stream.")
local r_deltas = panel(attn_delta, mlp_delta, "attn_vs_mlp", "attention delta vs MLP delta",
  "attention output", "MLP output", "What the two sublayers add.")
local r_recon = panel(reconstruction, hs_next, "reconstruction_vs_hs_next", "input + attn + mlp vs hidden_states[L+1]",
  "reconstruction", "block output", m.is_causal and "On the diagonal: the reconstruction is the block's output." or
  "Off the diagonal: a post-LayerNorm block normalises the sum.")
local r_change = panel(hs_next - hs_curr, attn_delta + mlp_delta, "change_vs_deltas",
  "hidden_states[L+1] - hidden_states[L] vs attn + mlp", "change in the residual stream", "attn + mlp deltas",
  "The change across the block is the sum of the two deltas.")

-- r between every pair of consecutive hidden states (the course's point, at every depth).
local rs = {}
for l = 0, m.n_layer - 1 do
  rs[#rs + 1] = stats.pearson(out.hidden_states[l][0]:flatten(), out.hidden_states[l + 1][0]:flatten()):item()
end
report.figure(figure.line {
  x = tensor.arange(m.n_layer), series = { { y = rs, label = "r(hidden_states[l], hidden_states[l+1])" } },
  markers = true, title = "Correlation of consecutive hidden states (all elements, no masking)",
  xlabel = "block l", ylabel = "r",
}, { name = "consecutive_r", caption = m.is_causal and "The last point compares the last block's input with ln_f of its output." or
  "Every point compares a block's input with its (normalised) output." })

L:finding("r between consecutive layers' hidden states", "about 1.0", ("%.4f (block %d)"):format(r_layers, layer))
L:finding("hidden_states[L+1] = hidden_states[L] + attn + mlp", "exact", "max |diff| " .. lesson.fmt(recon_diff))
L:finding("Extreme values (masked for visibility)", "mostly the first token",
  ("%d masked (|x| > %g), %d at token 0"):format(n_out, thresh, n_out_first))
L:finding("r of the attention and MLP deltas", "(plotted, not reported)", lesson.fmt(r_deltas, 4))
L:finding("r of the change across the block and attn + mlp", "(plotted: on the diagonal)", lesson.fmt(r_change, 6))

L:check("the HF output projections equal hook_attn_out / hook_mlp_out", alias_diff == 0, "max |diff| " .. lesson.fmt(alias_diff))
if m.is_causal then
  L:check("hidden_states[L+1] = hidden_states[L] + attn_out + mlp_out (to 1e-5)", recon_diff <= 1e-5,
    "max |diff| " .. lesson.fmt(recon_diff))
else
  -- Post-LayerNorm blocks (BERT): the plain sum does not give the output; it holds before each norm.
  local mid_diff = max_diff(stored.resid_mid, hs_curr + attn_delta)
  local post_diff = max_diff(stored.resid_post, stored.ln1 + mlp_delta)
  report.text(("BERT normalises after each sublayer, so input + attn + mlp is not the output (max |diff| %s, " ..
    "r = %.3f). The sums hold before each LayerNorm: resid_mid = input + attn (max |diff| %s), " ..
    "resid_post = LayerNorm(resid_mid) + mlp (max |diff| %s).")
    :format(lesson.fmt(recon_diff), r_recon, lesson.fmt(mid_diff), lesson.fmt(post_diff)))
  L:check("post-LN: hook_resid_mid = hidden_states[L] + attn_out (to 1e-5)", mid_diff <= 1e-5, "max |diff| " .. lesson.fmt(mid_diff))
  L:check("post-LN: hook_resid_post = ln1 + mlp_out (to 1e-5)", post_diff <= 1e-5, "max |diff| " .. lesson.fmt(post_diff))
end
L:finish()
