-- lesson: 16-03 CC: token prediction after head ablations (part 2)
-- Lesson 16-02 with each head replaced by its mean output instead of zeros: does the kind of
-- ablation matter?
local lesson = require("lib.lesson")
local setup = require("lib.heads_setup")

local L = lesson.start {
  id = "16-03",
  title = "CC: token prediction after head ablations (part 2)",
  course = "part6_attention_CCtokenPredictionHeads (video 260), GPT-2 small, all 12 × 12 layer × head ablations",
  options = {
    prompt = "Berlin is the capital of",
    target = "Germany",
    foil = "France",
    reference = 64,     -- Brown sentences whose tokens give each head's mean output (0: the prompt's own)
    batch_size = 16,
  },
  summary = "Each head's output (`blocks.L.attn.hook_z`) is replaced at every position either by zeros or by " ..
    "its mean over a reference set of text, one (layer, head) per row of batched passes (`heads` plugin, " ..
    "methods `zero` and `mean`). Zeroing removes the head and also shifts the input of the output projection " ..
    "away from anything the model has seen; the mean keeps the typical output and removes only what is " ..
    "specific to this prompt.",
}
local m = L.model
local heads = plugin("heads")
local target, foil, input, readout = setup.read(L, m)
local opts = { targets = { target, foil }, position = readout, batch_size = L.opts.batch_size }
local zero = heads.ablate(m, input, opts)
opts.method = "mean"
if L.opts.reference > 0 then
  local sentences = {}
  for s in corpus.brown():text({ category = "news" }):gmatch("[^%.!?]+[%.!?]") do
    local t = s:gsub("^%s+", "")
    if #t > 20 then sentences[#sentences + 1] = t end
    if #sentences >= L.opts.reference then break end
  end
  opts.reference = sentences
  report.text(("Means over the tokens of %d sentences of Brown news."):format(#sentences))
else
  report.text("Means over the prompt's own tokens.")
end
local mean = heads.ablate(m, input, opts)

local cz = setup.percent_change(zero.logprobs:select(2, 0), zero.clean_logprobs[0]:item()):flatten()
local cm = setup.percent_change(mean.logprobs:select(2, 0), mean.clean_logprobs[0]:item()):flatten()
report.figure(figure.scatter {
  x = cz, y = cm, alpha = 0.6, title = ("%% change in P(%s): zero vs mean ablation, one point per head"):format(L.opts.target),
  xlabel = "zeroed", ylabel = "mean-replaced",
}, { name = "zero_vs_mean", caption = "On the diagonal, the kind of ablation does not matter." })
local n_head = zero.n_head
report.figure(figure.heatmap {
  values = (cm - cz):view({ -1, n_head }), palette = "diverging",
  title = "Mean-replaced minus zeroed, % change in P(target)", xlabel = "head", ylabel = "layer",
  colorbar_label = "percentage points",
}, { name = "difference", caption = "Where zero and mean ablation disagree." })
local r = stats.pearson(cz:unsqueeze(1), cm):item()
local gap = (cm - cz):abs()
local worst = gap:argmax():item()
report.table("Zero vs mean", {
  columns = { "measure", "value" },
  rows = { { "correlation of the % changes (Pearson r)", r }, { "mean |difference| (points)", gap:mean():item() },
    { ("largest |difference| (layer %d, head %d)"):format(worst // n_head, worst % n_head), gap:max():item() },
    { "mean KL from clean, zero", zero.kl:mean():item() }, { "mean KL from clean, mean", mean.kl:mean():item() } },
})
L:finding("zero and mean ablation give nearly the same or unpredictably different effects", "\"deterministic chaos\"",
  ("r = %s between the two; mean |difference| %s points, largest %s (layer %d, head %d)"):format(lesson.fmt(r),
    lesson.fmt(gap:mean():item()), lesson.fmt(gap:max():item()), worst // n_head, worst % n_head))

-- Check: mean ablation written as a Lua hook, with the mean computed here from run_with_cache.
local l, h = worst // n_head, worst % n_head
local site = ("blocks.%d.attn.hook_z"):format(l)
local head_mean
if opts.reference then
  local _, cache = m:run_with_cache(opts.reference, { names = site })
  local z = cache[site]                                      -- [rows, pos, heads, d_head]
  local lengths = {}
  for i, s in ipairs(opts.reference) do lengths[i] = m:tokenize(s):numel() end
  local parts = {}
  for i = 1, #lengths do parts[i] = z[i - 1]:narrow(0, 0, lengths[i]):select(1, h) end
  head_mean = tensor.cat(parts, 0):double():mean(0)
else
  local ids = type(input) == "string" and m:tokenize(input) or input
  local _, cache = m:run_with_cache(ids:unsqueeze(0), { names = site })
  head_mean = cache[site][0]:select(1, h):double():mean(0)
end
local ids = type(input) == "string" and m:tokenize(input) or input
local logits = m:forward(ids:unsqueeze(0), { hooks = { [site] = function(z)
  local out = z:clone()
  out:select(2, h):copy(head_mean:float():expand({ out:size(0), out:size(1), head_mean:numel() }))
  return out
end } })
local lp = logits[0][readout]:double():log_softmax(-1)
local diff = math.abs(lp[target]:item() - mean.logprobs[l][h][0]:item())
L:check("the plugin's mean ablation equals the same as a Lua hook (1e-5)", diff < 1e-5, lesson.fmt(diff))
L:finish()
