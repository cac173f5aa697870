-- lesson: 12-19 Proper noun tuning in GPT2-medium
-- Tokens that look like proper nouns against an equal random sample of the others: a logistic
-- regression per MLP unit, the most name-selective unit over the text and over new text, and the
-- course's capitalisation rule scored against Brown's own proper-noun tags.
local lesson = require("lib.lesson")
local logit_summary = require("lib.logit_summary")
local proper = require("lib.proper_nouns")

local L = lesson.start {
  id = "12-19",
  title = "Proper noun tuning in GPT2-medium",
  course = "part5_neurons_classifyProperNouns (video 203), GPT-2 medium, MLP pre-activations (c_fc), layer 18 of 24",
  options = {
    layer = -1,        -- -1: the course's layer 18 of 24 at the same relative depth
    demo_layer = -1,   -- -1: the course's layer 10 of 24 (the single-unit demonstration)
    demo_unit = 33,
    seq_len = 1024,    -- tokens per batch (the course's 1024); run in windows of the model's context
    heatmap_tokens = 512,
    per_line = 20,
    alpha = 0.05,
    seed = 19,         -- the random comparison tokens
  },
  summary = "The course reads WikiText-2, which this project cannot reach. Here the text is the Brown corpus' held-out " ..
    "documents (every 10th, the ones the built-in model never trained on): batch 1 is its first `seq_len` tokens, " ..
    "batch 2, the out-of-sample batch, the next `seq_len`. A token is a proper noun by the course's rule when its " ..
    "text is longer than 2 characters, its stripped text starts with a capital letter, and the previous token does " ..
    "not end in `.`, `!`, `?` or `:`. Brown is tagged, so the rule is also scored against the tags, and the " ..
    "analysis repeated with the tags as labels. The comparison set is an equal number of other tokens drawn at " ..
    "random (seeded). The MLP pre-activations (`blocks.L.mlp.hook_pre`, the course's `c_fc` output) of every unit " ..
    "are fitted one by one: label ~ 1 + activation, by `stats.logit`.",
}
local m = L.model
local o = L.opts
local layer = o.layer >= 0 and math.min(o.layer, m.n_layer - 1) or L:layer(18, 24)
local demo_layer = o.demo_layer >= 0 and math.min(o.demo_layer, m.n_layer - 1) or L:layer(10, 24)
report.set({ seed = o.seed })

-- The text and its labels -------------------------------------------------------------------------
local brown = corpus.brown()
local _, validation = brown:split()
local text, owner, tags = proper.tagged_text(brown, validation, 2 * o.seq_len * 8)
-- Without framing tokens (a BOS would spell nothing): the windows are cut from one token stream.
local ids = m:tokenize(text, { add_special_tokens = false })
if ids:numel() < 2 * o.seq_len then
  error(("lesson 12-19: the held-out text has %d tokens; two batches of %d need more (try a smaller --seq-len)")
    :format(ids:numel(), o.seq_len), 0)
end
ids = ids:narrow(0, 0, 2 * o.seq_len)
if m:tokenize(""):numel() > 0 then
  report.text("Substitution: this model's tokenizer frames each input (a BOS, or [CLS] ... [SEP]); the course's GPT-2 " ..
    "has no framing, " ..
    "so the batches here are cut from one token stream without it, as the course cuts GPT-2's.")
end
local tokens = m:tokens(ids)
local covered = 0
for _, t in ipairs(tokens) do covered = covered + #t end
if covered > #text or text:sub(1, covered) ~= table.concat(tokens) then
  error("lesson 12-19: the tokens do not spell the text (a tokenizer that is not lossless)", 0)
end
local rule, tagged = proper.label(tokens, owner, tags)

-- Precision and recall of the rule against the tags, per batch.
local function score(from, to)
  local tp, fp, fn = 0, 0, 0
  for i = from + 1, to do
    if rule[i] and tagged[i] then tp = tp + 1 elseif rule[i] then fp = fp + 1 elseif tagged[i] then fn = fn + 1 end
  end
  return { tp = tp, fp = fp, fn = fn, precision = tp / math.max(tp + fp, 1), recall = tp / math.max(tp + fn, 1) }
end
local s1, s2 = score(0, o.seq_len), score(o.seq_len, 2 * o.seq_len)
local examples_fp, examples_fn = {}, {}
for i = 1, o.seq_len do
  if rule[i] and not tagged[i] and #examples_fp < 12 then examples_fp[#examples_fp + 1] = ("%q"):format(tokens[i]) end
  if tagged[i] and not rule[i] and #examples_fn < 12 then examples_fn[#examples_fn + 1] = ("%q"):format(tokens[i]) end
end
local flags = {}
for i = 1, #tokens do flags[i] = { i - 1, ("%q"):format(tokens[i]), rule[i] and 1 or 0, tagged[i] and 1 or 0 } end
report.table("Token labels", { columns = { "position", "token", "rule", "brown tag" }, rows = flags })
report.text(("## 1. Proper nouns by the rule and by the tags\n\n%d held-out Brown documents give %d tokens for two " ..
  "batches of %d. In batch 1 the rule marks %d tokens and the tags %d: precision %.1f%% (%d of the rule's tokens " ..
  "are tagged proper nouns), recall %.1f%% (%d of the tagged proper nouns are caught). Batch 2: precision %.1f%%, " ..
  "recall %.1f%%. A token counts as tagged when it starts a word Brown tags as a proper noun (`np`, `nps`, `np$`, " ..
  "with or without `-tl`/`-hl`); Brown tags days and months `nr` and titles such as District Attorney `nn-tl`, " ..
  "and the rule cannot see a name whose first token is one or two letters. Marked by the rule but not tagged: %s. " ..
  "Tagged but missed: %s.")
  :format(#validation, ids:numel(), o.seq_len, s1.tp + s1.fp, s1.tp + s1.fn, 100 * s1.precision, s1.tp,
    100 * s1.recall, s1.tp, 100 * s2.precision, 100 * s2.recall,
    #examples_fp > 0 and table.concat(examples_fp, ", ") or "none", #examples_fn > 0 and table.concat(examples_fn, ", ") or "none"))

-- Activations -------------------------------------------------------------------------------------
-- One batch of seq_len tokens as rows of at most the model's context.
local chunk = math.min(o.seq_len, m.max_positions)
local function activations(from, layers)
  local rows = {}
  local caches = {}
  for start = from, from + o.seq_len - 1, chunk do
    local n = math.min(chunk, from + o.seq_len - start)
    local names = {}
    for i, l in ipairs(layers) do names[i] = "blocks." .. l .. ".mlp.hook_pre" end
    local _, cache = m:run_with_cache(ids:narrow(0, start, n), { names = names, stop_at_layer = math.max(table.unpack(layers)) + 1 })
    caches[#caches + 1] = cache
  end
  local out = {}
  for _, l in ipairs(layers) do
    local parts = {}
    for i, cache in ipairs(caches) do parts[i] = cache["blocks." .. l .. ".mlp.hook_pre"][0]:float() end
    out[l] = tensor.cat(parts, 0)                                                 -- [seq_len, units]
  end
  return out
end
local acts1 = activations(0, { demo_layer, layer })
local acts2 = activations(o.seq_len, { layer })
local units = acts1[layer]:size(1)
if chunk < o.seq_len then
  report.text(("This model reads at most %d tokens, so each batch of %d runs as %d windows of %d: a token sees at most " ..
    "the %d tokens before it in its window (the course's GPT-2 medium reads the whole 1024)."):format(m.max_positions,
    o.seq_len, math.ceil(o.seq_len / chunk), chunk, chunk))
end

-- Targets and an equal random comparison set.
local function sample(labels, from, seed)
  local pos, other = {}, {}
  for i = from + 2, from + o.seq_len do                    -- ti >= 1 within the batch (1-based i)
    if labels[i] then pos[#pos + 1] = i - 1 - from else other[#other + 1] = i - 1 - from end
  end
  local n = math.min(#pos, #other)
  local _, order = tensor.rand({ #other }, { seed = seed }):sort()
  local chosen = {}
  for k = 0, n - 1 do chosen[k + 1] = other[order[k]:item() + 1] end
  local index = tensor.new(table.move(chosen, 1, n, n + 1, table.move(pos, 1, n, 1, {}))):long()
  local y = tensor.cat({ tensor.ones({ n }, { dtype = "float64" }), tensor.zeros({ n }, { dtype = "float64" }) })
  return index, y, n
end
local index1, y1, n1 = sample(rule, 0, o.seed)
if n1 < 3 then error(("lesson 12-19: only %d proper nouns by the rule in batch 1"):format(n1), 0) end

-- 2. One unit ------------------------------------------------------------------------------------------
local demo_unit, note = L:unit(o.demo_unit, units)
local demo_fit = stats.logit(acts1[demo_layer]:index(0, index1):select(1, demo_unit), y1)
report.text(("## 2. One unit\n\n%d proper nouns (the rule) and %d random other tokens of batch 1. Layer %d unit %d " ..
  "(the course's layer 10 of 24, unit 33)%s:"):format(n1, n1, demo_layer, demo_unit, note and (". " .. note) or ""))
logit_summary.report("Layer " .. demo_layer .. " unit " .. demo_unit, demo_fit, nil, {
  y_name = "proper noun (rule)", x_name = "activation", observations = 2 * n1 })

-- 3. Every unit of the layer ---------------------------------------------------------------------------
local x1 = acts1[layer]:index(0, index1)                                            -- [2n, units]
local fit = stats.logit(x1, y1)
local beta, p = fit.coef[1], fit.p[1]
local threshold = o.alpha / units
local sig = p:lt(threshold)                                                         -- nan p: not significant
local n_sig = sig:sum():item()
local n_sep = fit.separated:sum():item()
local unit_index = tensor.arange(units):double()
local series = {}
local classes = {
  { sig, beta:gt(0), "significant, beta > 0", "circle", "#d62728" },
  { sig, beta:lt(0), "significant, beta < 0", "circle", "#2ca02c" },
  { sig:eq(false), beta:gt(0), "not significant, beta > 0", "cross", "#d62728" },
  { sig:eq(false), beta:lt(0), "not significant, beta < 0", "cross", "#2ca02c" },
}
for _, cls in ipairs(classes) do
  local mask = (cls[1]:long() * cls[2]:long()):gt(0)
  if mask:any() then
    series[#series + 1] = { x = unit_index:masked_select(mask), y = beta:masked_select(mask), label = cls[3],
      marker = cls[4], color = cls[5] }
  end
end
report.text(("## 3. Every unit of layer %d\n\n%d units: %d significant at p < %g / %d (%d with beta > 0, %d with " ..
  "beta < 0); %d perfectly separate the two sets (no estimate, not counted).")
  :format(layer, units, n_sig, o.alpha, units, (sig:long() * beta:gt(0):long()):sum():item(),
    (sig:long() * beta:lt(0):long()):sum():item(), n_sep))
report.figure(figure.line {
  series = series, title = ("Layer %d: beta per unit"):format(layer), xlabel = "unit", ylabel = "beta",
}, { name = "beta_by_unit" })
local neglogp = -(p:clamp(1e-300)):log()
local ok = beta:isnan():eq(false)
local top = neglogp:masked_select(ok):max():item()
report.figure(figure.line {
  series = {
    { x = beta:masked_select(ok), y = neglogp:masked_select(ok), label = "unit", marker = "circle", color = "#1f77b4" },
    { x = { beta:masked_select(ok):min():item(), beta:masked_select(ok):max():item() },
      y = { -math.log(threshold), -math.log(threshold) }, label = "Bonferroni", color = "#808080", dashed = true },
  },
  title = ("Layer %d: beta vs -ln p"):format(layer), xlabel = "beta", ylabel = "-ln p", legend = "top left",
}, { name = "beta_vs_logp", caption = ("Above the dashed line: p < %g / %d. The largest -ln p is %.1f.")
  :format(o.alpha, units, top) })
report.tensor("fit", tensor.stack({ beta, p }), { caption = "[2, units]: beta and p of every unit of the layer" })

-- The most selective units.
local pos_sig = (sig:long() * beta:gt(0):long()):gt(0)
local best = pos_sig:any() and tensor.where(pos_sig, beta, -math.huge):argmax():item()
  or tensor.where(ok, beta, -math.huge):argmax():item()
local worst = tensor.where(ok, beta, math.huge):argmin():item()
local b0, b1 = fit.coef[0][best]:item(), fit.coef[1][best]:item()
report.text(("The unit with the largest %s positive beta is %d (beta %s, p %s); the most negative beta is unit %d " ..
  "(beta %s).%s"):format(pos_sig:any() and "significant" or "(none significant)", best, lesson.fmt(b1),
  lesson.fmt(p[best]:item()), worst, lesson.fmt(beta[worst]:item()),
  pos_sig:any() and "" or " No unit is significant with beta > 0, so the heatmaps show the largest beta."))

-- 4. The best unit over the text, in and out of sample ---------------------------------------------------
local function heat(acts, from, title)
  local n = math.min(o.heatmap_tokens, o.seq_len)
  local a = acts:select(1, best):narrow(0, 0, n)
  local v = lesson.minmax(a) ^ 2
  return lesson.token_lines(table.move(tokens, from + 1, from + n, 1, {}), v, o.per_line, title)
end
local index2, y2, n2 = sample(rule, o.seq_len, o.seed + 1)
local x2 = acts2[layer]:index(0, index2):select(1, best)
local acc_in = (x1:select(1, best) * b1 + b0):gt(0):eq(y1:gt(0.5)):double():mean():item()
local acc_out = n2 > 0 and (x2 * b1 + b0):gt(0):eq(y2:gt(0.5)):double():mean():item() or 0 / 0
report.text(("## 4. Unit %d over the text\n\nThe first %d tokens of each batch, the activation min-max scaled and " ..
  "squared as in the course (white = lowest, red = highest). In-sample accuracy of its fit: %.1f%%. Batch 2 is " ..
  "text the fit never saw: with the same coefficients, %d proper nouns and %d random other tokens are classified " ..
  "with accuracy %.1f%%."):format(best, math.min(o.heatmap_tokens, o.seq_len), 100 * acc_in, n2, n2, 100 * acc_out))
report.html(heat(acts1[layer], 0, ("batch 1, layer %d unit %d"):format(layer, best)))
report.html(heat(acts2[layer], o.seq_len, ("batch 2 (out of sample), layer %d unit %d"):format(layer, best)))

-- 5. The tags as labels ----------------------------------------------------------------------------------
local index_t, y_t, n_t = sample(tagged, 0, o.seed + 2)
local fit_t = stats.logit(acts1[layer]:index(0, index_t), y_t)
local sig_t = fit_t.p[1]:lt(threshold)
local both = (sig:long() + sig_t:long()):eq(2):sum():item()
report.text(("## 5. Brown's tags as the labels\n\nThe same analysis with the %d tagged proper nouns of batch 1 (and as " ..
  "many random other tokens): %d units significant, %d of them also significant with the rule's labels; unit %d " ..
  "has beta %s (p %s) here.")
  :format(n_t, sig_t:sum():item(), both, best, lesson.fmt(fit_t.coef[1][best]:item()), lesson.fmt(fit_t.p[1][best]:item())))

-- Checks and findings ------------------------------------------------------------------------------------
local saved = tensor.load(report.dir() .. "/data/fit.safetensors")["fit"]
L:check("the Bonferroni count equals the saved p recounted", saved[1]:lt(o.alpha / saved:size(1)):sum():item() == n_sig)
local csv = io.open(report.dir() .. "/data/token-labels.csv")
local tp, fp, fn, line_no = 0, 0, 0, 0
if csv then
  for line in csv:lines() do
    line_no = line_no + 1
    local pos, r, t = line:match("^(%d+),.*,(%d),(%d)$")
    if pos and tonumber(pos) < o.seq_len then
      if r == "1" and t == "1" then tp = tp + 1 elseif r == "1" then fp = fp + 1 elseif t == "1" then fn = fn + 1 end
    end
  end
  csv:close()
end
L:check("precision and recall recomputed from the saved label table", tp == s1.tp and fp == s1.fp and fn == s1.fn,
  ("tp %d fp %d fn %d"):format(tp, fp, fn))
local disjoint, list1 = true, index1:tolist()
local targets_set = {}
for k = 1, n1 do targets_set[list1[k]] = true end
for k = n1 + 1, 2 * n1 do
  if targets_set[list1[k]] or rule[list1[k] + 1] then disjoint = false end
end
L:check("the comparison tokens are as many as the targets, none of them a proper noun by the rule",
  #list1 == 2 * n1 and disjoint, n1 .. " + " .. n1)
L:finding("proper nouns in batch 1", "about 220, and as many comparison tokens", ("%d and %d"):format(n1, n1))
L:finding("beta vs -log p", "a funnel: large |beta| goes with high significance",
  ("%d of %d units significant"):format(n_sig, units))
L:finding("units of both signs", "positive- and negative-beta units exist", ("%d positive, %d negative significant")
  :format((sig:long() * beta:gt(0):long()):sum():item(), (sig:long() * beta:lt(0):long()):sum():item()))
L:finding("selectivity out of sample", "persists in batch 2", ("accuracy %.1f%% (in sample %.1f%%)"):format(100 * acc_out,
  100 * acc_in))
L:finding("the rule against Brown's tags", "not measured (WikiText has no tags)",
  ("precision %.1f%%, recall %.1f%%"):format(100 * s1.precision, 100 * s1.recall))
L:finish()
