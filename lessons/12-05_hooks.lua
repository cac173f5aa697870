-- lesson: 12-05 Extracting activations using hooks
-- Hooks read activations out of a forward pass: the Q slice of the fused QKV projection, hooks
-- on two layers that overwrite a table on every pass, removing a hook, and an accumulating hook.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-05",
  title = "Extracting activations using hooks",
  course = "part5_neurons_PytorchHook (video 189), GPT-2 small: Q of layers 5 and 7, an accumulating hook on layer 4",
  options = {
    -- Course layers (of 12) mapped onto this model; -1 = the course's choice.
    layer_a = -1, layer_b = -1, layer_acc = -1, layer_manual = -1,
    -- The course's sentences (part5_neurons_PytorchHook).
    first = "This is an example sentence.",
    second = "This is a different sentence",
    third = "I wish coffee tasted like toothpaste",
    timing_passes = 20,
  },
  summary = "Persistent hooks (`m:hook(name, fn)`) store the query activations of two layers in a table " ..
    "keyed like the course's (`attn_5_q`, `attn_output_5`), once through the Hugging Face module path " ..
    "(GPT-2's fused `attn.c_attn` sliced to its first d_model columns; each architecture's own layout " ..
    "elsewhere, lib/hf_paths) and once through the portable " ..
    "alias `blocks.L.attn.hook_q`. Every pass overwrites the table; removing a handle leaves its entry stale.",
}
local m = L.model
local d = m.d_model

-- The course's layers (5, 7, 4, 3 of GPT-2's 12) at the same relative depth of this model.
local function pick(given, course) return given >= 0 and math.min(given, m.n_layer - 1) or L:layer(course, 12) end
local layer_a, layer_b = pick(L.opts.layer_a, 5), pick(L.opts.layer_b, 7)
if layer_b == layer_a then   -- shallow models: two different layers all the same
  if layer_a + 1 < m.n_layer then layer_b = layer_a + 1 else layer_a = layer_a - 1 end
end
if layer_a < 0 then error("lesson 12-05 needs a model with at least 2 layers", 0) end
local layer_acc, layer_manual = pick(L.opts.layer_acc, 4), pick(L.opts.layer_manual, 3)

-- Hugging Face module paths of the query projection and the attention output (lib/hf_paths).
local hf = require("lib.hf_paths")
local paths = hf.of(m, "12-05")
local function path(kind, layer) return hf.path(paths, kind, layer) end
local heads
m:forward(L.opts.first, { hooks = { ["blocks.0.attn.hook_q"] = function(q) heads = q:size(2) end } })
local function q_columns(out) return hf.q_of(paths, out, d, heads) end
local function shape(t) return "[" .. table.concat(t:shape(), ", ") .. "]" end
local function max_diff(a, b) return (a - b):abs():max():item() end

-- 1. Calling a layer by hand ------------------------------------------------------------------
-- The course calls model.h[3].attn.c_attn on random numbers. Here the projection is rebuilt from
-- its weights; the same function applied to what the module received reproduces its output.
local weight = m:parameter(path("q_weight", layer_manual))
local bias = paths.q_bias and hf.optional_parameter(m, path("q_bias", layer_manual)) or nil
local function projection(x)                       -- [pos, d_model] -> [pos, 3 d_model] (fused QKV) or [pos, d_model]
  local y = paths.conv1d and x:matmul(weight) or x:matmul(weight:t())
  if bias then y = y + bias end
  return y
end
local random_in = tensor.randn({ 20, d }, { seed = 0 })
local random_out = projection(random_in)
local seen = {}
m:forward(L.opts.first, { hooks = {
  [path("q_in", layer_manual)] = function(x) seen.input = x[0]:clone() end,
  [path("q", layer_manual)] = function(y) seen.output = y[0]:clone() end,
} })
local manual_diff = max_diff(projection(seen.input), seen.output)
report.text(("## 1. A layer called by hand\n\nThe query projection of block %d (`%s`) applied to random " ..
  "input `[20, %d]` gives `%s`; %s. Applied to the input the module received on " ..
  "%q, it reproduces the module's output to %s (max |difference|).")
  :format(layer_manual, path("q", layer_manual), d, shape(random_out), paths.q_note, L.opts.first,
    lesson.fmt(manual_diff)))

-- 2. A hook factory storing Q and the attention output of two layers ---------------------------
local activations = {}                           -- keys like the course: attn_5_q, attn_output_5
local calls = {}                                 -- how often each hook ran
local function implant_hooks(layer)
  local q_key, out_key = ("attn_%d_q"):format(layer), ("attn_output_%d"):format(layer)
  calls[q_key], calls[out_key] = 0, 0
  return {
    m:hook(path("q", layer), function(qkv)
      activations[q_key] = q_columns(qkv):clone()    -- [batch, pos, d_model]: the Q columns
      calls[q_key] = calls[q_key] + 1
    end),
    m:hook(path("attn", layer), function(out)
      activations[out_key] = out:clone()
      calls[out_key] = calls[out_key] + 1
    end),
  }
end
local handles = { implant_hooks(layer_a), implant_hooks(layer_b) }


local key_a, key_b = ("attn_%d_q"):format(layer_a), ("attn_%d_q"):format(layer_b)
local function snapshot()
  local rows = {}
  local keys = {}
  for k in pairs(activations) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do rows[#rows + 1] = { k, shape(activations[k]), calls[k] } end
  return rows
end

-- The same pass also reads Q through the alias, which names the same site on every
-- architecture, split into heads ([batch, pos, head, d_head]; flattened back here).
local alias = {}
m:forward(L.opts.first, { hooks = {
  ["blocks." .. layer_a .. ".attn.hook_q"] = function(q) alias[layer_a] = q:flatten(2):clone() end,
  ["blocks." .. layer_b .. ".attn.hook_q"] = function(q) alias[layer_b] = q:flatten(2):clone() end,
} })
local first = { a = activations[key_a], b = activations[key_b] }
local after_first = snapshot()
local alias_diff = math.max(max_diff(alias[layer_a], first.a), max_diff(alias[layer_b], first.b))

m:forward(L.opts.second)
local second = { a = activations[key_a], b = activations[key_b] }
local after_second = snapshot()

report.text(("## 2. Hooks on two layers\n\nHooks on `%s` (sliced to its Q columns) and `%s` for L = %d " ..
  "and %d store into one table. Each pass overwrites it: after %q and then %q the entries have the second " ..
  "sentence's length. Q from the Hugging Face path equals `blocks.L.attn.hook_q` (max |difference| %s).")
  :format(path("q", "L"), path("attn", "L"), layer_a, layer_b, L.opts.first, L.opts.second,
    lesson.fmt(alias_diff)))
report.table("Stored activations after the first sentence",
  { columns = { "key", "shape", "hook calls" }, rows = after_first })
report.table("Stored activations after the second sentence",
  { columns = { "key", "shape", "hook calls" }, rows = after_second })

-- Shared prefix: a causal model's rows for the same leading tokens do not depend on what follows.
local ids1, ids2 = m:tokenize(L.opts.first), m:tokenize(L.opts.second)
local prefix = 0
while prefix < math.min(ids1:numel(), ids2:numel()) and ids1[prefix]:item() == ids2[prefix]:item() do
  prefix = prefix + 1
end
local prefix_diff, later_diff = 0, nil
if prefix > 0 then
  prefix_diff = max_diff(first.a[0]:narrow(0, 0, prefix), second.a[0]:narrow(0, 0, prefix))
end
if prefix < math.min(ids1:numel(), ids2:numel()) then
  later_diff = max_diff(first.a[0][prefix], second.a[0][prefix])
end
report.text(("The two sentences share their first %d token(s) (%s). Their Q rows in layer %d differ by at most " ..
  "%s (float rounding: the matrix products ran on different shapes), because a causal model's rows never " ..
  "see later tokens; the first differing token's row differs by %s.")
  :format(prefix, table.concat(m:tokens(ids1:narrow(0, 0, math.max(prefix, 1))), "|"), layer_a,
    lesson.fmt(prefix_diff), lesson.fmt(later_diff)))

-- 3. Plots of the stored Q (layer a, first sentence) -----------------------------------------
local q = first.a[0]                                      -- [pos, d_model]
local T = q:size(0)
local tokens = m:tokens(ids1)
if T >= 4 then
  local r23 = stats.pearson(q[2], q[3]):item()
  report.figure(figure.scatter {
    x = q[2], y = q[3], size = 1.5,
    title = ("Layer %d Q: token 3 (%q) vs token 2 (%q), r = %.3f"):format(layer_a, tokens[4], tokens[3], r23),
    xlabel = "token 2 activation", ylabel = "token 3 activation",
  }, { name = "q_token3_vs_token2", caption = "Each point is one of the " .. d .. " Q dimensions." })
end
local centred = q - q:mean(1, true)
local corr = stats.cosine_matrix(centred)                -- token x token Pearson r
report.figure(figure.heatmap {
  values = corr, palette = "diverging", vmin = -0.8, vmax = 0.8, xlabels = tokens, ylabels = tokens,
  title = ("Correlation between tokens' Q vectors, layer %d"):format(layer_a), colorbar_label = "r",
}, { name = "q_token_correlation", caption = "np.corrcoef of the tokens' Q vectors (colour limits +-0.8, as the course)." })
local first_r, other_r, n_first, n_other = 0, 0, 0, 0
for i = 0, T - 1 do
  for j = i + 1, T - 1 do
    local r = corr[i][j]:item()
    if i == 0 then first_r, n_first = first_r + r, n_first + 1 else other_r, n_other = other_r + r, n_other + 1 end
  end
end
first_r = n_first > 0 and first_r / n_first or 0 / 0
other_r = n_other > 0 and other_r / n_other or 0 / 0

-- 4. Removing one hook ------------------------------------------------------------------------
for _, h in ipairs(handles[2]) do h:remove() end
local calls_before = calls[key_b]
m:forward(L.opts.third)
local after_third = snapshot()
local stale_diff = max_diff(activations[key_b], second.b)
local fresh_len = activations[key_a]:size(1)
report.text(("## 3. Removing a hook\n\nThe layer-%d handles are removed (`handle:remove()`, active: %s), then %q runs. " ..
  "The layer-%d entries now have its %d tokens; the layer-%d entries still hold the second sentence " ..
  "(%d tokens): stale, and equal to what they were (max |difference| %s).")
  :format(layer_b, tostring(handles[2][1]:active()), L.opts.third, layer_a, fresh_len, layer_b,
    activations[key_b]:size(1), lesson.fmt(stale_diff)))
report.table("Stored activations after removing the layer " .. layer_b .. " hooks",
  { columns = { "key", "shape", "hook calls" }, rows = after_third })
for _, h in ipairs(handles[1]) do h:remove() end

-- 5. An accumulating hook ---------------------------------------------------------------------
local sentences = {   -- the course's four sentences, the first one twice
  "I like chocolate.",
  "I like chocolate.",
  "You know the shape my breath will take before I let it out.",
  "Four score and seven years ago.",
}
local collected = {}
do
  local h <close> = m:hook(path("mlp_proj", layer_acc), function(out) collected[#collected + 1] = out:clone() end)
  for _, s in ipairs(sentences) do m:forward(s) end
end
local acc_rows = {}
for i, t in ipairs(collected) do acc_rows[#acc_rows + 1] = { i - 1, sentences[i], shape(t) } end
report.text(("## 4. An accumulating hook\n\nA hook on `%s` appends each pass's output to a list instead of " ..
  "overwriting one entry. Four sentences give four entries (0-based, as everything in llmscope); the " ..
  "repeated sentence gives identical entries."):format(path("mlp_proj", layer_acc)))
report.table("Accumulated activations", { columns = { "entry", "sentence", "shape" }, rows = acc_rows })
local repeat_diff = #collected >= 2 and max_diff(collected[1], collected[2]) or 0 / 0

-- 6. Hooks cost time -------------------------------------------------------------------------
local function time_passes(n)
  local t0 = os.clock()
  for _ = 1, n do m:forward(L.opts.first) end
  return (os.clock() - t0) / n * 1000
end
local n = L.opts.timing_passes
local plain_ms = time_passes(n)
local all = m:hook("blocks.*.mlp.hook_pre", function(a) local _ = a:clone() end)
local hooked_ms = time_passes(n)
all:remove()

L:finding("Rows of shared prefix tokens across two runs (causal model)", "identical", "max |diff| " .. lesson.fmt(prefix_diff))
L:finding("First token's Q correlates weakly with the other tokens",
  "weak correlation of token 0", ("mean r: token 0 vs others %s, among the others %s"):format(lesson.fmt(first_r), lesson.fmt(other_r)))
L:finding("Removed hook's entry", "stays stale", ("%d tokens (the third sentence has %d)"):format(activations[key_b]:size(1), fresh_len))
L:finding("Accumulating hook over 4 sentences", "4 list elements of shape [1, T, d_model]", #collected .. " entries")
L:finding("Hooks slow inference; remove them when not needed", "slower",
  ("%.2f ms per pass without hooks, %.2f ms with a cloning hook in every block"):format(plain_ms, hooked_ms))

L:check("Q from the Hugging Face path (its Q columns) = blocks.L.attn.hook_q", alias_diff == 0,
  "max |diff| " .. lesson.fmt(alias_diff))
L:check("the projection called by hand = the module's output", manual_diff < 1e-4, "max |diff| " .. lesson.fmt(manual_diff))
if m.is_causal then
  L:check("shared-prefix rows are equal across the two runs", prefix > 0 and prefix_diff < 1e-5,
    ("%d shared tokens, max |diff| %s"):format(prefix, lesson.fmt(prefix_diff)))
end
L:check("the removed hook did not fire", calls[key_b] == calls_before and not handles[2][1]:active(),
  ("calls before %d, after %d"):format(calls_before, calls[key_b]))
L:check("the removed hook's entry is stale (unchanged)", stale_diff == 0, "max |diff| " .. lesson.fmt(stale_diff))
L:check("the accumulating hook kept one entry per pass", #collected == #sentences, #collected .. " entries")
L:check("the repeated sentence gives identical entries", repeat_diff == 0, "max |diff| " .. lesson.fmt(repeat_diff))
L:finish()
