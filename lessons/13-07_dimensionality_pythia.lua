-- lesson: 13-07 CodeChallenge: dimensionalities in Pythia
-- The effective dimensionality of lesson 13-06 on a GPT-NeoX (Pythia) model, at 95% and 99% of
-- the variance, for three kinds of text: two books and the HTML of a joke website.
local lesson = require("lib.lesson")
local setup = require("lib.dimensionality_setup")

local L = lesson.start {
  id = "13-07",
  title = "CodeChallenge: dimensionalities in Pythia",
  course = "part5_layer_CCdimensionalityPythia (video 214), EleutherAI/pythia-2.8b; Alice in Wonderland, " ..
    "the HTML of pigeonsarentreal.co.uk and Heart of Darkness",
  options = {
    tokens = 2048,      -- tokens per text (every text gets the same number)
    seq_len = 1024,     -- tokens per row (capped at the model's context)
    check_rows = 1,     -- rows of the SVD cross-check
  },
  summary = "Each text is tokenised, cut to the same number of tokens and into rows; the `dimensionality` " ..
    "plugin gives, per hidden state, how many principal components reach 95% and 99% of the variance of " ..
    "the tokens' vectors (as in lesson 13-06). Counts are also shown as a percentage of the most the data " ..
    "allows, min(tokens − 1, width).",
}
local m = L.model
L:sizes { tokens = { 2048, "tokens per text" } }
local dimensionality = plugin("dimensionality")
if m.architecture ~= "gpt_neox" then
  report.text(("The course runs a Pythia (GPT-NeoX) model; this run's model is a %s, so the numbers are that " ..
    "model's. Run with `--model` pointing at a Pythia checkpoint for the course's setting."):format(m.architecture))
end
report.text("Substitution: offline, Alice in Wonderland becomes the Brown corpus's fiction, Heart of Darkness " ..
  "its adventure stories, and the joke website's HTML a page written for this lesson (`lessons/data/joke_site.html`: " ..
  "markup, styles and a script around a few jokes).")

local texts = {
  { name = "fiction (for Alice)", ids = L:tokens { category = "fiction", max_tokens = L.opts.tokens,
    max_chars = 16 * L.opts.tokens } },
  { name = "HTML page (for the joke website)",
    ids = m:tokenize(corpus.read_text(L:data_path("joke_site.html")), { add_special_tokens = false }) },
  { name = "adventure (for Heart of Darkness)", ids = L:tokens { category = "adventure",
    max_tokens = L.opts.tokens, max_chars = 16 * L.opts.tokens } },
}
local n = L.opts.tokens
for _, t in ipairs(texts) do n = math.min(n, t.ids:numel()) end
if n < L.opts.tokens then
  report.text(("The HTML page has %d tokens with this tokenizer, so every text is cut to %d tokens."):format(n, n))
end
local seq_len = math.min(L.opts.seq_len, m.max_positions)
for _, t in ipairs(texts) do
  t.rows = setup.rows(t.ids:narrow(0, 0, n), seq_len)
  t.out = dimensionality.spectrum(m, t.rows, { thresholds = { 0.95, 0.99 } })
end
local maximum = texts[1].out.max_components
local n_states = #texts[1].out.sites

report.text(("## Components per hidden state\n\n%d tokens per text, %d dimensions per hidden state: at most %d " ..
  "components can carry variance."):format(n, texts[1].out.units, maximum))
for j, threshold in ipairs({ 95, 99 }) do
  local series = {}
  for _, t in ipairs(texts) do
    series[#series + 1] = { y = t.out.n_components:select(1, j - 1):double() * (100 / maximum), label = t.name }
  end
  report.figure(figure.line {
    x = tensor.arange(n_states), markers = true, series = series,
    title = ("Components for %d%% of the variance, %% of the most possible"):format(threshold),
    xlabel = "hidden state (0 = embeddings)", ylabel = ("%% of %d"):format(maximum),
  }, { name = ("components_%d"):format(threshold), caption = ("Per hidden state, the principal components " ..
    "needed to reach %d%% of the variance, as a percentage of %d."):format(threshold, maximum) })
end

local rows = {}
for l = 0, n_states - 1 do
  local row = { l }
  for _, t in ipairs(texts) do
    row[#row + 1] = t.out.n_components[l][0]:item()
    row[#row + 1] = t.out.n_components[l][1]:item()
  end
  rows[#rows + 1] = row
end
local columns = { "hidden state" }
for _, t in ipairs(texts) do
  columns[#columns + 1] = t.name .. " 95%"
  columns[#columns + 1] = t.name .. " 99%"
end
report.table("Components per hidden state", { columns = columns, rows = rows })

-- The course: HTML uses ~20% of the maximum dimensionality, and dimensionality depends on the text.
local function mean_share(t, j) return t.out.n_components:select(1, j):double():mean():item() / maximum end
local html, books = mean_share(texts[2], 0), (mean_share(texts[1], 0) + mean_share(texts[3], 0)) / 2
L:finding("share of the maximum dimensionality the HTML uses (95%)", "about 20%",
  ("%s%% on average over hidden states (the books: %s%%)"):format(lesson.fmt(100 * html), lesson.fmt(100 * books)))
local spread = 0
for l = 0, n_states - 1 do
  local lo, hi = math.huge, -math.huge
  for _, t in ipairs(texts) do
    local c = t.out.n_components[l][0]:item()
    lo, hi = math.min(lo, c), math.max(hi, c)
  end
  spread = math.max(spread, hi - lo)
end
L:finding("dimensionality depends strongly on the text", "yes",
  ("the three texts differ by up to %d components (95%%) at one hidden state"):format(spread))

local diff = setup.svd_difference(m, dimensionality, texts[2].rows, n_states - 1, L.opts.check_rows, 1)
L:check("the plugin's spectrum of the last hidden state equals an SVD of the same tokens in Lua (1e-6)",
  diff < 1e-6, "max |difference| " .. lesson.fmt(diff))
local ordered = true
for _, t in ipairs(texts) do
  ordered = ordered and (t.out.n_components:select(1, 0) - t.out.n_components:select(1, 1)):le(0):all()
end
L:check("reaching 99% never takes fewer components than 95%", ordered)
L:check("every text was read at the same size", texts[1].out.n_tokens == texts[2].out.n_tokens and
  texts[2].out.n_tokens == texts[3].out.n_tokens, texts[1].out.n_tokens)
L:finish()
