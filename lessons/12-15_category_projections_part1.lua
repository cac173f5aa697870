-- lesson: 12-15 CodeChallenge: Category-tuned MLP projections (part 1)
-- Forty sentences about dental hygiene or household objects: a t-test per MLP output unit per
-- layer at the target word's final token, Bonferroni per layer, and the share of tuned units.
local lesson = require("lib.lesson")
local category = require("lib.category_setup")

local L = lesson.start {
  id = "12-15",
  title = "CodeChallenge: Category-tuned MLP projections (part 1)",
  course = "part5_neurons_CCmultiTokenTtests (video 199), GPT-2 large, MLP output (mlp.c_proj) of all 36 layers",
  options = {
    alpha = 0.05,
    equal_var = true,   -- Student's t (scipy's default, the course's); false: Welch
    seed = 15,          -- the jitter of the t-value plot
  },
  summary = "The course's 40 sentences were written by Claude and live in its notebook, which this project cannot " ..
    "reach; `lessons/data/category_sentences.txt` holds 40 of our own, five per target word, in the course's " ..
    "order: sentences 0-19 contain ` toothpaste`, ` toothbrush`, ` floss` or ` mouthwash` (dental hygiene, label " ..
    "0), sentences 20-39 ` dishwasher`, ` nightstand`, ` bookshelf` or ` doorknob` (household objects, label 1). " ..
    "At the target's final token (`m:find_tokens`), the MLP output of every layer (`blocks.L.hook_mlp_out`, the " ..
    "course's `mlp.c_proj` hook) is compared between the categories with `stats.ttest_ind`, unit by unit, and a " ..
    "unit is significant at p < alpha / units within its layer (Bonferroni).",
}
local m = L.model
local o = L.opts
local c = category.setup(L)
local n_layer, units = c.acts:size(1), c.acts:size(2)
local threshold = o.alpha / units

local group0 = c.acts:index(0, c.labels:eq(0):nonzero():flatten())                -- [20, n_layer, units]
local group1 = c.acts:index(0, c.labels:eq(1):nonzero():flatten())
local r = stats.ttest_ind(group0, group1, { equal_var = o.equal_var })              -- t, p [n_layer, units]
local sig = r.p:lt(threshold)
local per_layer = sig:double():mean(1) * 100                                        -- [n_layer] %
report.tensor("ttest", tensor.stack({ r.t, r.p }), { caption = "[2, n_layer, units]: t (dental minus household), p" })

report.text(("## 1. The t-tests\n\n%d sentences (%d and %d per category), %d layers x %d units. Over all layers " ..
  "%.1f%% of the units are significant at p < %g / %d; per layer from %.1f%% to %.1f%%. t > 0 means a larger " ..
  "output for dental-hygiene words.")
  :format(#c.sentences, group0:size(0), group1:size(0), n_layer, units, sig:double():mean():item() * 100, o.alpha,
    units, per_layer:min():item(), per_layer:max():item()))

-- The jittered t values: non-significant units as crosses, significant ones as circles.
local layer_of = tensor.arange(n_layer):double():unsqueeze(1):expand({ n_layer, units })
local jitter = (tensor.rand({ n_layer, units }, { dtype = "float64", seed = o.seed }) - 0.5) * 0.6
local x = layer_of + jitter
local series = { { x = x:masked_select(sig:eq(false)), y = r.t:masked_select(sig:eq(false)), label = "not significant",
  marker = "cross", color = "#d62728" } }
if sig:any() then
  series[2] = { x = x:masked_select(sig), y = r.t:masked_select(sig), label = "significant", marker = "circle",
    color = "#5b2c83" }
end
report.figure(figure.line {
  series = series, title = "t per unit and layer (dental minus household)", xlabel = "layer (jittered)", ylabel = "t",
}, { name = "t_values", caption = ("Red crosses: not significant; purple circles: p < %g / %d within the layer.")
  :format(o.alpha, units) })
local categories = {}
for l = 0, n_layer - 1 do categories[l + 1] = tostring(l) end
report.figure(figure.bar {
  categories = categories, series = { { values = per_layer, label = "% significant" } },
  title = "Significant units per layer", xlabel = "layer", ylabel = "% of units",
}, { name = "percent_significant" })

-- Early against late layers, positive against negative t.
local half = n_layer // 2
local early = per_layer:narrow(0, 0, math.max(half, 1)):mean():item()
local late = per_layer:narrow(0, half, n_layer - half):mean():item()
local n_sig = sig:sum():item()
local n_pos = (sig:long() * r.t:gt(0):long()):sum():item()
local trend = late < early and "fewer" or (late > early and "more" or "as many")
report.text(("The later half of the layers has %s significant units than the earlier half (%.1f%% vs %.1f%% on " ..
  "average). Of the %d significant units, %d have t > 0 (dental) and %d t < 0 (household).")
  :format(trend, late, early, n_sig, n_pos, n_sig - n_pos))
local rows = {}
for l = 0, n_layer - 1 do
  rows[#rows + 1] = { l, sig[l]:sum():item(), per_layer[l]:item(), r.t[l]:max():item(), r.t[l]:min():item() }
end
report.table("Per layer", { columns = { "layer", "significant", "% significant", "max t", "min t" }, rows = rows })

-- Checks and findings --------------------------------------------------------------------------------
local saved = tensor.load(report.dir() .. "/data/ttest.safetensors")["ttest"]
local recount = saved[1]:lt(o.alpha / saved:size(2)):sum(1)
L:check("per-layer Bonferroni counts equal the saved p recounted", recount:equal(sig:sum(1)),
  table.concat(recount:tolist(), ","))
local check_pos = c.positions:tolist()
local ok = true
for i, s in ipairs(c.sentences) do
  local ids = m:tokenize(s)
  local t = category.targets[c.target[i - 1]:item() + 1]
  local n_t = lesson.word_ids(m, t):numel()
  if m:decode(ids:narrow(0, check_pos[i] - n_t + 1, n_t)) ~= t then ok = false end
end
L:check("every final-token index ends its sentence's target", ok, #c.sentences .. " sentences")
local b0 = c.acts[0][0]
local _, cache = m:run_with_cache(c.sentences[1], { names = "blocks.0.hook_mlp_out", stop_at_layer = 1 })
L:check("a gathered activation equals the sentence run alone", cache["blocks.0.hook_mlp_out"][0][check_pos[1]]
  :float():allclose(b0, 1e-4, 1e-4), "sentence 0, layer 0")
L:finding("significant units per layer", "about 5-10%", ("%.1f%% to %.1f%%"):format(per_layer:min():item(),
  per_layer:max():item()))
L:finding("trend with depth", "the share decreases in later layers", ("%s in the later half (%.1f%% vs %.1f%%)")
  :format(trend, late, early))
L:finding("sign of t", "positive and negative roughly symmetric", ("%d positive, %d negative"):format(n_pos, n_sig - n_pos))
L:finding("sentences", "40 written by Claude (in the notebook)", "40 of our own, same targets and order")
L:finish()
