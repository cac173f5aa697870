-- lesson: 12-09 CodeChallenge: Grammar tuning in MLP neurons? (part 2)
-- A paired noun-minus-verb t-test for every neuron, Bonferroni-corrected; the most noun- and
-- verb-preferring neurons over a held-out paragraph; and whether the tuning found on half of the
-- words holds on the other half.
local lesson = require("lib.lesson")
local grammar = require("lib.grammar_setup")

local L = lesson.start {
  id = "12-09",
  title = "CodeChallenge: Grammar tuning in MLP neurons? (part 2)",
  course = "part5_neurons_CCtuningNeo (video 193), GPT-Neo 125M, MLP pre-activations (c_fc) of block 8 of 12",
  options = {
    layer = -1,       -- -1: the course's block 8 of 12 at the same relative depth
    n_words = 100,
    alpha = 0.05,
    per_line = 20,    -- tokens per line of the heatmaps
    seed = 9,         -- the random split into halves
  },
  summary = "Words and activations as in part 1 (the Brown-derived lists). Noun i and verb i are paired by " ..
    "frequency rank, and `ttest_1samp(noun - verb, 0)` runs per neuron, as the course's " ..
    "`ttest_1samp(np.diff(all_activations, axis=0), 0)`: t > 0 means the neuron prefers nouns. A neuron is " ..
    "significant at p < alpha / neurons (Bonferroni).",
}
local m = L.model
local o = L.opts
local g = grammar.setup(L)
local verbs, nouns = g.acts[0]:double(), g.acts[1]:double()  -- [n, units]
local n, units = verbs:size(0), verbs:size(1)
local threshold = o.alpha / units

-- 1. The t-test ------------------------------------------------------------------------------------
local r = stats.ttest_1samp(nouns - verbs, 0)
local sig = r.p:lt(threshold)
local n_sig = sig:sum():item()
local n_pos = (sig:long() * r.t:gt(0):long()):sum():item()
local n_neg = n_sig - n_pos
report.text(("## 1. Noun minus verb, neuron by neuron\n\nLayer %d, %d word pairs, %d neurons: %d significant " ..
  "(%.1f%%) at p < %g / %d = %s, %d preferring nouns (t > 0) and %d verbs.")
  :format(g.layer, n, units, n_sig, 100 * n_sig / units, o.alpha, units, lesson.fmt(threshold), n_pos, n_neg))
local idx = tensor.arange(units):double()
local series = {
  { x = idx:masked_select(sig:eq(false)), y = r.t:masked_select(sig:eq(false)), label = "not significant",
    marker = "circle", color = "#b0b0b0" },
}
if n_sig > 0 then
  series[#series + 1] = { x = idx:masked_select(sig), y = r.t:masked_select(sig), label = "significant (Bonferroni)",
    marker = "circle", color = "#d62728" }
end
report.figure(figure.line {
  series = series, title = ("Noun - verb t per neuron, layer %d (%d of %d significant)"):format(g.layer, n_sig, units),
  xlabel = "neuron", ylabel = "t (> 0: nouns)",
}, { name = "t_values", caption = ("Red: the %d neurons below the Bonferroni threshold."):format(n_sig) })
report.tensor("ttest", tensor.stack({ r.t, r.p }), { caption = "[2, units]: row 0 t, row 1 p" })

local max_t = r.t:argmax():item()
local min_t = r.t:argmin():item()
report.text(("The most noun-preferring neuron is %d (t = %s, p = %s), the most verb-preferring %d (t = %s, p = %s).")
  :format(max_t, lesson.fmt(r.t[max_t]:item()), lesson.fmt(r.p[max_t]:item()), min_t,
    lesson.fmt(r.t[min_t]:item()), lesson.fmt(r.p[min_t]:item())))

-- 2. A held-out paragraph -----------------------------------------------------------------------------
local paragraph = table.concat(L:data_lines("randomness.txt"), " ")
local ids = m:tokenize(paragraph)
if ids:numel() > m.max_positions then ids = ids:narrow(0, 0, m.max_positions) end
local _, cache = m:run_with_cache(ids, { names = g.site, stop_at_layer = g.layer + 1 })
local acts = cache[g.site][0]:float()                          -- [pos, units]
local v_max = lesson.minmax(acts:select(1, max_t))
local v_min = lesson.minmax(acts:select(1, min_t))
local tokens = m:tokens(ids)
-- The k distinct tokens with the highest scaled values, best first.
local function top_tokens(values, k)
  local _, order = values:sort(0, true)
  local words, seen = {}, {}
  for _, i in ipairs(order:tolist()) do
    local tok = tokens[i + 1]
    if not seen[tok] then
      seen[tok] = true
      words[#words + 1] = ("%q"):format(tok)
      if #words == k then break end
    end
  end
  return table.concat(words, ", ")
end
local top_noun, top_verb = top_tokens(v_max, 5), top_tokens(v_min, 5)
report.text(("## 2. The two neurons over a held-out paragraph\n\nThe lead of Wikipedia's \"Randomness\" (%d tokens; " ..
  "see `lessons/data/randomness.txt`). Each neuron's activation is min-max scaled over the paragraph: red for the " ..
  "noun neuron %d, blue for the verb neuron %d, %d tokens per line. The noun neuron peaks on %s; the verb neuron " ..
  "on %s."):format(#tokens, max_t, min_t, o.per_line, top_noun, top_verb))
report.html(lesson.token_lines(tokens, v_max, o.per_line, ("neuron %d (max t, nouns)"):format(max_t)))
report.html(lesson.token_lines(tokens, -v_min, o.per_line, ("neuron %d (min t, verbs)"):format(min_t)))

-- 3. One half finds, the other half tests --------------------------------------------------------------
local perm = select(2, tensor.rand({ n }, { seed = o.seed }):sort())
local half = n // 2
local a, b = perm:narrow(0, 0, half), perm:narrow(0, half, n - half)
local ra = stats.ttest_1samp((nouns - verbs):index(0, a), 0)
local rb = stats.ttest_1samp((nouns - verbs):index(0, b), 0)
local found = ra.p:lt(threshold)
local n_found = found:sum():item()
local kept_sign, kept_sig, kept_bonf = 0, 0, 0
if n_found > 0 then
  local same = (ra.t:sign():eq(rb.t:sign()):long() * found:long()):gt(0)
  kept_sign = same:sum():item()
  kept_sig = (same:long() * rb.p:lt(o.alpha / n_found):long()):sum():item()
  kept_bonf = (same:long() * rb.p:lt(threshold):long()):sum():item()
end
report.text(("## 3. Does the tuning generalise to other words?\n\nThe course's caveat: the neurons were found and " ..
  "described on the same words. Here the %d pairs are split at random (seed %d) into halves of %d and %d. On the " ..
  "first half, %d neurons pass p < %s. On the second half, %d of them keep the sign of their t, %d keep the sign " ..
  "and pass p < %g / %d (Bonferroni over the neurons carried over), and %d pass the full threshold p < %s.")
  :format(n, o.seed, half, n - half, n_found, lesson.fmt(threshold), kept_sign, kept_sig, o.alpha, math.max(n_found, 1),
    kept_bonf, lesson.fmt(threshold)))
report.figure(figure.line {
  series = {
    { x = ra.t:masked_select(found:eq(false)), y = rb.t:masked_select(found:eq(false)), label = "not found on half 1",
      marker = "circle", color = "#b0b0b0" },
    n_found > 0 and { x = ra.t:masked_select(found), y = rb.t:masked_select(found), label = "found on half 1",
      marker = "square", color = "#d62728" } or nil,
  },
  title = "t on the two halves of the words", xlabel = "t, half 1", ylabel = "t, half 2",
}, { name = "split_half", caption = "Points near the diagonal keep their preference on words they were not selected on." })

-- Checks and findings -----------------------------------------------------------------------------------
local paired = stats.ttest_rel(nouns, verbs)
L:check("the paired t equals the one-sample t of the differences", (paired.t - r.t):abs():max():item() < 1e-9)
local saved = tensor.load(report.dir() .. "/data/ttest.safetensors")
local saved_p = saved[next(saved)][1]
L:check("the Bonferroni count equals the count of saved p below alpha / neurons",
  saved_p:lt(o.alpha / saved_p:numel()):sum():item() == n_sig, n_sig .. " neurons")
L:check("the heatmaps are min-max scaled", v_max:min():item() == 0 and math.abs(v_max:max():item() - 1) < 1e-6 and
  v_min:min():item() == 0)
L:check("the max-t neuron has the largest t", r.t:max():item() == r.t[max_t]:item())
L:finding("significant neurons (Bonferroni)", "a small fraction", ("%d of %d (%.1f%%)"):format(n_sig, units, 100 * n_sig / units))
L:finding("max-t (noun) neuron on the paragraph", "highlights entropy, uncertainty, information", top_noun)
L:finding("min-t (verb) neuron on the paragraph", "highlights is, applies, follow", top_verb)
L:finding("found on half the words, kept on the other half", "not tested in the course (its caveat)",
  ("%d of %d keep sign and p < %g/%d"):format(kept_sig, n_found, o.alpha, math.max(n_found, 1)))
L:finish()
