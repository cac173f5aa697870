-- lesson: 13-06 "Effective dimensionality" with PCA
-- How many dimensions do the hidden states use? Per hidden state, the PCA of every token's vector
-- (the SVD of the mean-centred tokens x dimensions matrix): the cumulative share of variance and
-- the number of components that reach 95%, for real text and for the same tokens shuffled.
local lesson = require("lib.lesson")
local setup = require("lib.dimensionality_setup")

local L = lesson.start {
  id = "13-06",
  title = "\"Effective dimensionality\" with PCA",
  course = "part5_layer_effectiveDimensionality (video 213), GPT-2 XL, Alice in Wonderland (pg11)",
  options = {
    tokens = 4096,      -- tokens of the text analysed
    seq_len = 1024,     -- tokens per row (capped at the model's context)
    category = "fiction",
    seed = 13,          -- for the shuffled control
    check_rows = 2,     -- rows of the SVD cross-check
  },
  summary = "The text is cut into rows of `seq_len` tokens and run through the model; every token of every " ..
    "row is one sample. For each hidden state (Hugging Face's `hidden_states`: the embeddings, then each " ..
    "block's output, the last after the final norm) the `dimensionality` plugin accumulates the covariance " ..
    "of the samples on the model's device and returns its eigenvalues, which are the squared singular values " ..
    "of the course's SVD. The control is the same tokens in a random order.",
}
local m = L.model
L:sizes { tokens = { 4096, "tokens" } }
report.text("Substitution: the course reads Alice in Wonderland (Project Gutenberg pg11); offline, this run " ..
  "reads the Brown corpus (" .. L.opts.category .. "), also English fiction.")
local dimensionality = plugin("dimensionality")

local ids, source = L:tokens { category = L.opts.category, max_tokens = L.opts.tokens,
  max_chars = 16 * L.opts.tokens }
local seq_len = math.min(L.opts.seq_len, m.max_positions)
local real_rows = setup.rows(ids, seq_len)
local shuffled_rows = setup.rows(setup.shuffled(ids, L.opts.seed), seq_len)
local real = dimensionality.spectrum(m, real_rows, { thresholds = { 0.95, 0.99 } })
local shuffled = dimensionality.spectrum(m, shuffled_rows, { thresholds = { 0.95, 0.99 } })
local n_states = #real.sites
local maximum = real.max_components

report.text(("## Components per hidden state\n\n%d tokens of %s in %d rows of up to %d tokens; each hidden " ..
  "state has %d dimensions, so at most %d components can carry variance (tokens − 1 or the width, " ..
  "whichever is smaller)."):format(real.n_tokens, source, real_rows.ids:size(0), seq_len, real.units, maximum))

local layers = tensor.arange(n_states)
report.figure(figure.line {
  x = layers, markers = true,
  series = {
    { y = real.n_components:select(1, 0), label = "real text, 95%" },
    { y = shuffled.n_components:select(1, 0), label = "shuffled tokens, 95%" },
    { y = real.n_components:select(1, 1), label = "real text, 99%" },
    { y = shuffled.n_components:select(1, 1), label = "shuffled tokens, 99%" },
  },
  title = "Components needed to reach 95% and 99% of the variance",
  xlabel = "hidden state (0 = embeddings)", ylabel = "components",
}, { name = "components_per_layer", caption = ("How many principal components each hidden state needs, out of " ..
  "at most %d."):format(maximum) })

-- Cumulative curves for the first, middle and last hidden states.
local shown = { 0, n_states // 2, n_states - 1 }
local k = math.min(maximum, real.units)
local series = {}
for _, l in ipairs(shown) do
  series[#series + 1] = { y = real.cumulative[l]:narrow(0, 0, k) * 100, label = ("real, hidden state %d"):format(l) }
  series[#series + 1] = { y = shuffled.cumulative[l]:narrow(0, 0, k) * 100, label = ("shuffled, hidden state %d"):format(l) }
end
report.figure(figure.line {
  x = tensor.arange(1, k + 1), series = series,
  title = "Cumulative variance explained", xlabel = "components", ylabel = "% of the variance",
}, { name = "cumulative", caption = "Steep curves mean a few directions carry most of the variance." })

local rows = {}
for l = 0, n_states - 1 do
  rows[#rows + 1] = { l, real.n_components[l][0]:item(), shuffled.n_components[l][0]:item(),
    real.n_components[l][1]:item(), shuffled.n_components[l][1]:item(), real.explained[l][0]:item() }
end
report.table("Components per hidden state", {
  columns = { "hidden state", "real 95%", "shuffled 95%", "real 99%", "shuffled 99%", "share of component 1 (real)" },
  rows = rows,
})

-- What the course reports: dimensionality changes over layers, and real and shuffled text differ.
local n95 = real.n_components:select(1, 0):double()
local s95 = shuffled.n_components:select(1, 0):double()
local lo, hi = n95:min():item(), n95:max():item()
local differ = (n95 - s95):abs():gt(0):sum():item()
local mean_diff = (s95 - n95):mean():item()
local largest = (s95 - n95):abs():max():item()
L:finding("the number of components for 95% changes across layers", "yes",
  ("from %d to %d of at most %d"):format(lo, hi, maximum))
L:finding("real and shuffled text need different numbers of components", "they differ",
  ("in %d of %d hidden states, by at most %d components; shuffled minus real %s on average"):format(differ,
    n_states, largest, lesson.fmt(mean_diff)))

local diff = setup.svd_difference(m, dimensionality, real_rows, n_states // 2, L.opts.check_rows, 1)
L:check(("the plugin's spectrum of hidden state %d equals an SVD of the same tokens in Lua (1e-6)"):format(n_states // 2),
  diff < 1e-6, "max |difference| " .. lesson.fmt(diff))
L:check("every spectrum sums to 1", (real.cumulative:select(1, -1) - 1):abs():max():item() < 1e-9 and
  (shuffled.cumulative:select(1, -1) - 1):abs():max():item() < 1e-9)
L:check("no threshold needs more components than the data has", real.n_components:max():item() <= maximum and
  shuffled.n_components:max():item() <= maximum, ("max %d of %d"):format(
    math.max(real.n_components:max():item(), shuffled.n_components:max():item()), maximum))
L:check("both runs read the same number of tokens", real.n_tokens == shuffled.n_tokens, real.n_tokens)
L:finish()
