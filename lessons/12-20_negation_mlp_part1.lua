-- lesson: 12-20 CodeChallenge: Negation tuning in MLP neurons (part 1)
-- Labels the negations and affirmations of a text by the course's rules and cuts the 90 + 1 + 10
-- token windows around them: the two batches that parts 2 and 3 classify unit by unit.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-20",
  title = "CodeChallenge: Negation tuning in MLP neurons (part 1)",
  course = "part5_neurons_CCclassifyNegationsMLP (video 204), GPT-2 large on Philip K. Dick's \"The Variable Man\"",
  options = {
    max_tokens = 0,      -- tokens of the text to label (0: all of it)
    max_windows = 0,     -- windows kept per class, spread evenly over the text (0: all)
    context_pre = 90,    -- tokens before the target (the target's index in its window)
    context_post = 10,   -- tokens after it
    examples = 4,        -- example windows shown per class
    top = 15,            -- rows of the most-frequent-token tables
  },
  summary = "The course labels every token of a book: a negation is a token whose stripped, lowercased " ..
    "text is `not`, `cannot`, `nor` or `never`, or contains `'t`/`n't`, and whose next token starts with a " ..
    "space (so `not` in noted or `nor` in enormous are not negations); an affirmation is one of " ..
    "`agree always allow can certainly could definitely may might shall should`, not followed by ` not`, " ..
    "and followed by a token starting with a space. Only tokens with 90 tokens before and 10 after them " ..
    "count, and each becomes a window of 101 tokens with the target at index 90. The `negation` plugin " ..
    "applies the rules (`label`) and cuts the windows (`windows`).",
}
local m = L.model
local neg = plugin("negation")
local opts = L.opts
local rule_opts = { context_pre = opts.context_pre, context_post = opts.context_post }

-- The text -------------------------------------------------------------------------------------
local ids, source = L:tokens {
  max_tokens = opts.max_tokens > 0 and opts.max_tokens or nil,
  max_chars = opts.max_tokens > 0 and 10 * opts.max_tokens or nil,   -- no need to tokenize the rest
}
local seen, unique = {}, 0
for _, id in ipairs(ids:tolist()) do
  if not seen[id] then seen[id], unique = true, unique + 1 end
end
report.text(("## 1. The text\n\n%s: %d tokens, %d of them distinct (the course prints the same two numbers " ..
  "for its book)."):format(source, ids:numel(), unique))

-- Labels --------------------------------------------------------------------------------------
local labels = neg.label(m, ids, rule_opts)
local n_neg, n_aff = labels.negations:numel(), labels.affirmations:numel()
if n_neg == 0 or n_aff == 0 then
  error(("lesson 12-20: the text has %d negations and %d affirmations; it needs some of both"):format(n_neg, n_aff), 0)
end
local keep = opts.max_windows > 0 and opts.max_windows or nil
local w_neg = neg.windows(ids, labels.negations, { context_pre = opts.context_pre, context_post = opts.context_post, max = keep })
local w_aff = neg.windows(ids, labels.affirmations, { context_pre = opts.context_pre, context_post = opts.context_post, max = keep })
local width = opts.context_pre + 1 + opts.context_post
report.text(("## 2. Labels and batches\n\n%d negations and %d affirmations in tokens %d to %d. " ..
  "`batch_negations` is [%d, %d] and `batch_affirmations` [%d, %d]%s; the target is at index %d of every window.")
  :format(n_neg, n_aff, opts.context_pre, ids:numel() - opts.context_post - 1,
    w_neg:size(0), width, w_aff:size(0), width,
    keep and (" (at most " .. keep .. " windows per class, spread evenly over the text)") or "", opts.context_pre))
report.figure(figure.bar {
  categories = { "negations", "affirmations" },
  series = { { values = { n_neg, n_aff }, label = "labelled" }, { values = { w_neg:size(0), w_aff:size(0) }, label = "windows kept" } },
  title = "Windows per class", ylabel = "count",
}, { name = "counts", caption = "Labelled targets and the windows kept for the regressions (all unless --max-windows)." })

-- The most frequent targets.
local function token_table(name, list, total)
  local rows = {}
  for i = 1, math.min(opts.top, #list) do
    rows[#rows + 1] = { list[i].token, list[i].count, ("%.1f%%"):format(100 * list[i].count / total) }
  end
  report.table(name, { columns = { "token (stripped, lowercased)", "count", "share" }, rows = rows })
end
report.text("## 3. The most frequent targets\n\nGPT-2's tokenizer splits don't into ` don` + `'t`, so the " ..
  "contraction shows up as the token `'t`: the rule labels the `'t`, not the verb before it.")
token_table("Most frequent negation tokens", labels.negation_tokens, n_neg)
token_table("Most frequent affirmation tokens", labels.affirmation_tokens, n_aff)

-- Example windows ------------------------------------------------------------------------------
report.text(("## 4. Example windows\n\nEach window as text, the target in red. The regressions of parts 2 and 3 " ..
  "look at the activation at index %d only; the rest is the context that the model read before it (a causal " ..
  "model never sees the 10 tokens after the target at that position)."):format(opts.context_pre))
local function show(w, kind)
  local n = w:size(0)
  for i = 0, math.min(opts.examples, n) - 1 do
    local row = w[math.floor(i * n / math.min(opts.examples, n))]
    local mark = tensor.zeros({ width })
    mark[opts.context_pre] = 1
    report.html(figure.token_heatmap(m:tokens(row), mark, {
      title = ("%s window %d (target %q)"):format(kind, i, m:decode(row:narrow(0, opts.context_pre, 1))), vmax = 1,
    }))
  end
end
show(w_neg, "negation")
show(w_aff, "affirmation")
report.tensor("negation_positions", labels.negations, { caption = "0-based token positions of the negations" })
report.tensor("affirmation_positions", labels.affirmations, { caption = "0-based token positions of the affirmations" })

-- Checks and findings --------------------------------------------------------------------------
-- The positions windows(..., {max = k}) keeps: positions[floor(i * n / k)].
local function kept(positions)
  local n = positions:numel()
  if not keep or n <= keep then return positions end
  return positions:index(0, (tensor.arange(keep) * n) // keep)
end
local kept_neg, kept_aff = kept(labels.negations), kept(labels.affirmations)
L:check("every window's index " .. opts.context_pre .. " is its labelled token",
  w_neg:select(1, opts.context_pre):equal(ids:index(0, kept_neg)) and
  w_aff:select(1, opts.context_pre):equal(ids:index(0, kept_aff)), w_neg:size(0) + w_aff:size(0) .. " windows")
local first = kept_neg[0]:item()
L:check("a window holds the text around its target", w_neg[0]:equal(ids:narrow(0, first - opts.context_pre, width)),
  "first negation window, target at token " .. first)
L:check("targets lie in [context_pre, n - context_post)", labels.negations:min():item() >= opts.context_pre and
  labels.affirmations:max():item() < ids:numel() - opts.context_post)
L:finding("text", "The Variable Man (Gutenberg #32154), GPT-2 tokens", ("%s, %d tokens"):format(source, ids:numel()))
L:finding("negation windows [N, 101]", "not recorded in any source", ("[%d, %d]"):format(w_neg:size(0), width))
L:finding("affirmation windows [N, 101]", "not recorded in any source", ("[%d, %d]"):format(w_aff:size(0), width))
L:finding("affirmation words", "code: agree always allow can certainly could definitely may might shall should " ..
  "(the notes say 'can, could, may, will')", "the code's list")
L:finding("most frequent negation token", "not recorded", ("%q (%d)"):format(labels.negation_tokens[1].token,
  labels.negation_tokens[1].count))
L:finish()
