-- lesson: 12-10 CodeChallenge: Context-modulated activation in MLP
-- A layer's MLP pre-activations hardly change when a word gains a leading space, but change a lot
-- when a token sits in a passage instead of standing alone (the context plugin does the passes).
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-10",
  title = "CodeChallenge: Context-modulated activation in MLP",
  course = "part5_neurons_CCcontextComplexities (video 194), GPT-Neo 125M, MLP pre-activations of block 8 of 12",
  options = {
    layer = -1,                 -- -1: the course's block 8 of 12 at the same relative depth
    nouns = "brown",            -- "brown": lesson 12-08's nouns from Brown's tags; or a file in lessons/data
    n_words = 100,
    prompt = "I think the world could be better if",
    length = 200,               -- tokens of the passage, prompt included (at most the model's context)
    passage = "generate",       -- "generate": the model continues the prompt; "text": --text FILE or Brown
    seed = 1, temperature = 1.0, top_k = 50,  -- sampling: HF's do_sample defaults (top_k 50); 0 = all tokens
    batch_size = 64,            -- sequences per pass in the plugin
    max_points = 30000,         -- points drawn per scatter plot (r always uses every value)
  },
  summary = "Part 1 runs each of the common nouns alone, as `word` and as `\" \" .. word`, and averages the " ..
    "MLP pre-activations (`blocks.L.mlp.hook_pre`, before GELU) over the word's tokens. Part 2 has the model " ..
    "continue a prompt, then compares every token's activations in the passage with the same token run alone.",
}
local m = L.model
local context = plugin("context")
L:sizes { n_words = { 100, "nouns" }, length = { 200, "tokens in the passage" } }
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:layer(8, 12)
local site = "blocks." .. layer .. ".mlp.hook_pre"

-- At most `max_points` of the values, the same random subset of x, y and colour (r uses all).
local function thin(n)
  if n <= L.opts.max_points then return nil end
  local _, idx = tensor.rand({ n }, { seed = 0 }):topk(L.opts.max_points)
  return idx
end
local function pick(t, idx) return idx and t:index(0, idx) or t end

-- Part 1: with and without a leading space -----------------------------------------------------
local words, noun_source
if L.opts.nouns == "brown" then
  words = require("lib.grammar_setup").word_lists(L.opts.n_words)
  noun_source = "lesson 12-08's list: the Brown corpus' most frequent nouns by its own tags"
else
  words = L:data_lines(L.opts.nouns)
  noun_source = "lessons/data/" .. L.opts.nouns
end
report.text("Substitution: the course's 100 nouns come from a web word list this project cannot reach; this run " ..
  "uses " .. noun_source .. ".")
if #words > L.opts.n_words then words = table.move(words, 1, L.opts.n_words, 1, {}) end
if #words == 0 then error("lesson 12-10: no words (option --nouns " .. L.opts.nouns .. ")", 0) end

local sp = context.spacing(m, words, { layer = layer, batch_size = L.opts.batch_size })
local units = sp.acts:size(-1)
local without, with = sp.acts[0]:flatten(), sp.acts[1]:flatten()
local diff = with - without
local colour = diff:abs():sqrt()
local peak = colour:max():item()
colour = peak > 0 and colour / peak or colour
local idx = thin(without:numel())

-- Token counts include any special tokens the tokenizer adds ([CLS] ... [SEP] for BERT).
local one_without, one_with = sp.n_tokens[0]:eq(1):sum():item(), sp.n_tokens[1]:eq(1):sum():item()
local same_ids = 0   -- words whose two spellings tokenise alike (WordPiece drops the space)
for _, w in ipairs(words) do
  if lesson.word_ids(m, w):equal(lesson.word_ids(m, " " .. w)) then same_ids = same_ids + 1 end
end
report.text(("## 1. Words with and without a leading space\n\n%d nouns (%s), block %d (`%s`, %d units). " ..
  "Without a space %d of them are a single token, with a space %d; %d of them tokenise the same either way. " ..
  "Where the ids differ, the two spellings are different tokens with their own embeddings: how much do the " ..
  "layer's activations differ?")
  :format(#words, noun_source,
    layer, site, units, one_without, one_with, same_ids))
report.figure(figure.scatter {
  x = pick(without, idx), y = pick(with, idx), color = pick(colour, idx), size = 1, alpha = 0.6,
  colorbar_label = "sqrt|difference| (normalised)",
  title = ("Block %d MLP pre-activations, %d words x %d units: r = %.3f"):format(layer, #words, units, sp.r),
  xlabel = "word alone (no space)", ylabel = "\" \" + word",
}, { name = "space_scatter", caption = ("Every (word, unit) value without the space against with it, coloured " ..
  "by the square root of the absolute difference; r = %.3f (the course: about 0.99). %.0f%% of the values move by " ..
  "more than 0.5 with the space."):format(sp.r, 100 * diff:abs():gt(0.5):double():mean():item()) ..
  (idx and (" A random " .. L.opts.max_points .. " of " .. without:numel() .. " points are drawn.") or "") })
report.figure(figure.histogram {
  series = { { values = without, label = "without space" }, { values = with, label = "with space" } },
  bins = 100, density = true, xlim = { -4, 4 },
  title = "Distribution of activations", xlabel = "activation", ylabel = "density",
}, { name = "space_histograms", caption = "Density histograms (100 bins; x limited to +-4 as the course)." })

-- The units that change most, against the typical unit.
local top_values, top_units = sp.unit_mean_abs_diff:topk(math.min(10, units))
local median_unit = sp.unit_mean_abs_diff:median():item()
local top_rows = {}
for i = 0, top_units:numel() - 1 do
  local u = top_units[i]:item()
  top_rows[#top_rows + 1] = { u, top_values[i]:item(), sp.acts[0]:select(1, u):mean():item(), sp.acts[1]:select(1, u):mean():item() }
end
report.table("Units that change most with the space",
  { columns = { "unit", "mean |difference|", "mean without", "mean with" }, rows = top_rows })
report.text(("The median unit changes by %s on average (over the words); the top unit by %s.")
  :format(lesson.fmt(median_unit), lesson.fmt(top_values[0]:item())))

-- Part 2: tokens in a passage vs alone ---------------------------------------------------------
local max_len = math.min(L.opts.length, m.max_positions)
local ids, source
if L.opts.passage == "generate" and m.is_causal then
  local prompt_len = m:tokenize(L.opts.prompt):numel()
  if prompt_len >= max_len then error("lesson 12-10: the prompt is longer than --length " .. max_len, 0) end
  local out = m:generate(L.opts.prompt, {
    max_new_tokens = max_len - prompt_len, greedy = false, seed = L.opts.seed,
    temperature = L.opts.temperature, top_k = L.opts.top_k,
  })
  ids = out[0]
  source = ("the model's continuation of %q (sampled: seed %d, temperature %g, %s)")
    :format(L.opts.prompt, L.opts.seed, L.opts.temperature,
      L.opts.top_k > 0 and ("top_k %d%s"):format(L.opts.top_k, L.opts.top_k == 50 and ", Hugging Face's default" or "")
        or "all tokens (top_k off)")
  report.set({ seed = L.opts.seed })
elseif L.opts.passage == "generate" or L.opts.passage == "text" then
  local text_source
  ids, text_source = L:tokens { max_tokens = max_len, max_chars = 20 * max_len }
  source = text_source .. (m.is_causal and "" or " (this model does not generate text)")
else
  error("option --passage: expected 'generate' or 'text', got '" .. tostring(L.opts.passage) .. "'", 0)
end

local ic = context.in_context(m, ids, { layer = layer, batch_size = L.opts.batch_size })
local T = ids:numel()
local in_text, alone = ic.acts[0]:flatten(), ic.acts[1]:flatten()
local idx2 = thin(in_text:numel())
report.text(("## 2. Tokens in context vs alone\n\nThe passage: %s, %d tokens. Each token's activations in the " ..
  "passage are compared with the same token run as a one-token sequence (`[2, units, T]` = `[2, %d, %d]`).")
  :format(source, T, units, T))
report.text("Passage: " .. (m:decode(ids):gsub("%s+", " ")))
local context_caption = ("Every (unit, token) value, r = %.3f. Attention has reshaped each token's vector " ..
  "before the MLP; here the cloud is %s than part 1's (r = %.3f there)."):format(ic.r,
  ic.r < sp.r and "wider" or "narrower", sp.r)
report.figure(figure.scatter {
  x = pick(alone, idx2), y = pick(in_text, idx2), size = 1, alpha = 0.4,
  title = ("Block %d: token in the text vs alone, r = %.3f"):format(layer, ic.r),
  xlabel = "token alone", ylabel = "token in the text",
}, { name = "context_scatter", caption = context_caption ..
  (idx2 and (" A random " .. L.opts.max_points .. " of " .. in_text:numel() .. " points are drawn.") or "") })
report.figure(figure.histogram {
  series = {
    { values = alone, label = "isolated" },
    { values = in_text, label = "in text" },
    { values = in_text - alone, label = "difference" },
  },
  bins = 100, density = true, xlim = { -7, 7 },
  title = "Distribution of activations", xlabel = "activation", ylabel = "density",
}, { name = "context_histograms", caption = "Density histograms (100 bins; x limited to +-7 as the course)." })
report.figure(figure.line {
  series = { { y = ic.token_r, label = "r over units" } }, markers = true,
  title = "Per token: r between its activations in the text and alone", xlabel = "token position", ylabel = "r",
}, { name = "token_r", caption = m.is_causal and "Token 0 sees only itself in a causal model, so its r is 1." or
  "Every token sees the whole passage in a bidirectional model." })
report.html(figure.token_heatmap(m:tokens(ids), ic.token_mean_abs_diff, {
  title = "Mean |in text - alone| over units, per token",
}))
report.tensor("spacing_acts", sp.acts, { caption = "[2, words, units]: 0 without, 1 with the leading space" })
report.tensor("context_acts", ic.acts, { caption = "[2, units, T]: 0 in the text, 1 alone" })
report.tensor("passage_ids", ids)

-- Findings and checks -------------------------------------------------------------------------
L:finding("With vs without a leading space: r", "about 0.99", lesson.fmt(sp.r, 4))
L:finding("With vs without a leading space: outlier units", "a few",
  ("top unit mean |diff| %s vs median unit %s"):format(lesson.fmt(top_values[0]:item()), lesson.fmt(median_unit)))
L:finding("In the text vs alone", "very large scatter (no r reported)",
  ("r = %s, mean |diff| %s (space: %s)"):format(lesson.fmt(ic.r, 4), lesson.fmt(ic.diff.mean_abs), lesson.fmt(sp.diff.mean_abs)))
L:finding("Context changes activations more than the leading space", "yes (single-word tests miss context)",
  (ic.r < sp.r and "yes" or "no") .. (": r %s vs %s"):format(lesson.fmt(ic.r, 3), lesson.fmt(sp.r, 3)))

-- The caption's "wider"/"narrower" against r recomputed from the saved activations.
local saved_sp = tensor.load(report.dir() .. "/data/spacing_acts.safetensors")["spacing_acts"]
local saved_ic = tensor.load(report.dir() .. "/data/context_acts.safetensors")["context_acts"]
local r_sp = stats.pearson(saved_sp[0]:flatten():unsqueeze(1), saved_sp[1]:flatten())[0]:item()
local r_ic = stats.pearson(saved_ic[0]:flatten():unsqueeze(1), saved_ic[1]:flatten())[0]:item()
L:check("the context caption says wider/narrower as the saved data do",
  context_caption:find(r_ic < r_sp and "is wider" or "is narrower", 1, true) ~= nil,
  ("r %.3f in context vs %.3f with/without space"):format(r_ic, r_sp))
L:check("spacing r = stats.pearson over the returned activations",
  math.abs(sp.r - stats.pearson(without, with):item()) < 1e-6, lesson.fmt(sp.r, 8))
L:check("in-context r = stats.pearson over the returned activations",
  math.abs(ic.r - stats.pearson(in_text, alone):item()) < 1e-6, lesson.fmt(ic.r, 8))
if m.is_causal then
  local first = (ic.acts[0]:select(1, 0) - ic.acts[1]:select(1, 0)):abs():max():item()
  L:check("token 0 is the same in the text and alone (it sees only itself)", first < 1e-5, "max |diff| " .. lesson.fmt(first))
end
L:finish()
