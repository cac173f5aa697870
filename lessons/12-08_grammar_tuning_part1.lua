-- lesson: 12-08 CodeChallenge: Grammar tuning in MLP neurons? (part 1)
-- The 100 most frequent nouns and verbs, each run alone: the MLP pre-activations of one layer as
-- a [words x neurons] image, and each neuron's mean over the nouns.
local lesson = require("lib.lesson")
local grammar = require("lib.grammar_setup")

local L = lesson.start {
  id = "12-08",
  title = "CodeChallenge: Grammar tuning in MLP neurons? (part 1)",
  course = "part5_neurons_CCtuningNeo (video 192), GPT-Neo 125M, MLP pre-activations (c_fc) of block 8 of 12",
  options = {
    layer = -1,      -- -1: the course's block 8 of 12 at the same relative depth
    n_words = 100,   -- words per list
    vmin = -2.0,     -- the course's colour limits for the image
    vmax = 1.0,
  },
  summary = "The course reads its word lists from a web page this project cannot reach; here they come from the " ..
    "Brown corpus' own part-of-speech tags: the most frequent common nouns (tag `nn`) and base-form verbs (tag " ..
    "`vb`), lower-cased, a word tagged both ways going to the list of its more frequent tag, and only words written " ..
    "in lower case at least half the time (so not symbols like `Af`). Each word runs " ..
    "alone, without a leading space, and the MLP pre-activations (`blocks.L.mlp.hook_pre`, the course's " ..
    "`c_fc` output before GELU) are averaged over the word's tokens, which handles words of several tokens.",
}
local m = L.model
local g = grammar.setup(L)
local units = g.acts:size(2)
local n = #g.nouns

report.text(("## 1. The words\n\nLayer %d of %d (the course's block 8 of 12 at the same relative depth), site `%s`, " ..
  "%d units. The %d nouns and %d verbs, most frequent first, with how often Brown tags each word either way:")
  :format(g.layer, m.n_layer, g.site, units, n, #g.verbs))
grammar.report_lists(g)
local multi = g.noun_tokens:gt(1):sum():item()
report.text(("%d of the %d nouns are more than one token for this tokenizer; their activations are the mean over " ..
  "their tokens."):format(multi, n))

-- 2. The image and the noun means ---------------------------------------------------------------
local verb_acts, noun_acts = g.acts[0], g.acts[1]                                 -- [n, units] each
report.figure(figure.heatmap {
  values = verb_acts, vmin = L.opts.vmin, vmax = L.opts.vmax, colorbar_label = "pre-activation",
  title = ("Verbs x neurons, layer %d"):format(g.layer), xlabel = "neuron", ylabel = "verb (most frequent first)",
}, { name = "verbs_by_neurons", caption = ("Each row a verb, each column a neuron, colour limits %g to %g as in the " ..
  "course. A neuron that responds the same way to every word shows as a vertical band."):format(L.opts.vmin, L.opts.vmax) })
report.figure(figure.heatmap {
  values = noun_acts, vmin = L.opts.vmin, vmax = L.opts.vmax, colorbar_label = "pre-activation",
  title = ("Nouns x neurons, layer %d"):format(g.layer), xlabel = "neuron", ylabel = "noun (most frequent first)",
}, { name = "nouns_by_neurons" })

local noun_mean = noun_acts:mean(0)                                                -- [units]
local verb_mean = verb_acts:mean(0)
local share_negative = noun_mean:lt(0):double():mean():item()
-- Vertical bands: neurons whose value varies little across words relative to their offset.
local spread = noun_acts:std(0)
local banded = noun_mean:abs():gt(spread * 2):sum():item()
report.figure(figure.line {
  series = { { y = noun_mean, label = "nouns" }, { y = verb_mean, label = "verbs" } },
  title = ("Mean pre-activation per neuron, layer %d"):format(g.layer), xlabel = "neuron", ylabel = "mean over words",
}, { name = "mean_per_neuron", caption = ("%.0f%% of the neurons have a negative mean over the nouns (median %s); " ..
  "%d neurons have a mean more than twice their spread across nouns, the vertical bands of the images.")
  :format(100 * share_negative, lesson.fmt(noun_mean:median():item()), banded) })
local gap = (noun_mean - verb_mean):abs()
local top_gap, top_unit = gap:topk(5)
local rows = {}
for i = 0, 4 do
  local u = top_unit[i]:item()
  rows[#rows + 1] = { u, noun_mean[u]:item(), verb_mean[u]:item(), top_gap[i]:item() }
end
report.table("Largest noun-verb differences of the mean", { columns = { "neuron", "noun mean", "verb mean", "|difference|" },
  rows = rows })
report.tensor("activations", g.acts, { caption = "[2, words, units]: index 0 verbs, 1 nouns (the course's all_activations)" })

-- Checks and findings -------------------------------------------------------------------------------
local single = g.noun_tokens:eq(1):nonzero():flatten()
if single:numel() > 0 then
  local i = single[0]:item()
  local _, cache = m:run_with_cache(g.nouns[i + 1], { names = g.site, stop_at_layer = g.layer + 1 })
  local direct = cache[g.site][0][g.noun_starts[i]:item()]:float()
  L:check("a one-token noun's row is its activation run alone", direct:allclose(noun_acts[i], 1e-4, 1e-5),
    ("'%s'"):format(g.nouns[i + 1]))
end
if multi > 0 then
  local i = g.noun_tokens:gt(1):nonzero():flatten()[0]:item()
  local _, cache = m:run_with_cache(g.nouns[i + 1], { names = g.site, stop_at_layer = g.layer + 1 })
  local direct = cache[g.site][0]:narrow(0, g.noun_starts[i]:item(), g.noun_tokens[i]:item()):float():mean(0)
  L:check("a multi-token noun's row is the mean over its tokens", direct:allclose(noun_acts[i], 1e-4, 1e-5),
    ("'%s', %d tokens"):format(g.nouns[i + 1], g.noun_tokens[i]:item()))
end
local overlap = 0
local in_nouns = {}
for _, w in ipairs(g.nouns) do in_nouns[w] = true end
for _, w in ipairs(g.verbs) do if in_nouns[w] then overlap = overlap + 1 end end
L:check("the lists are disjoint", overlap == 0, overlap .. " shared words")
L:finding("mean offsets", "systematic, mostly negative", ("%.0f%% of neurons negative over the nouns"):format(100 * share_negative))
L:finding("vertical bands", "some neurons differ consistently across all words",
  ("%d neurons with |mean| > 2 x their spread across nouns"):format(banded))
L:finding("noun/verb preferences", "slight, visible in the means (tested in part 2)",
  ("largest |noun mean - verb mean| %s (neuron %d)"):format(lesson.fmt(top_gap[0]:item()), top_unit[0]:item()))
L:finish()
