-- lesson: 17-01 Successive median-replacement of MLP neurons
-- Replace the top fraction of the last token's MLP pre-activations by their median, at every
-- layer and many rates, and see how the target token's log-probability suffers (replace plugin).
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "17-01",
  title = "Successive median-replacement of MLP neurons",
  course = "part6_mlp_replacement (video 265), GPT-2 large (36 layers, 5120 MLP units), " ..
    "\"It was a dark and stormy\" -> \" night\"",
  options = {
    prompt = "It was a dark and stormy",
    target = " night",           -- a string (its first token, as the course's encode(' night')[0]) or a token id
    layer = -1,                  -- demo layer; -1: the course's layer 9 of 36 at the same relative depth
    rates = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9 },
    small = true,                -- also the small rates the video explored (0.2% to 4.5%)
    small_rates = { 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.045 },
    modes = true,                -- also replacement by zero and by the position's mean
    check_loop = true,
    vocab_points = 5000,         -- points in the log-softmax plot (more ids are drawn as their upper envelope)           -- check the batched sweep against one pass per intervention (demo layer)
  },
  summary = "At the prompt's last token, the top `rate` fraction of a layer's MLP pre-activations " ..
    "(`blocks.L.mlp.hook_pre`, before GELU; the course hooks `mlp.c_fc`) is set to the median of that token's " ..
    "values, and the target's log-probability is compared with the clean run: Δ = clean − replaced, so a " ..
    "positive Δ means the target lost probability. Every layer × rate is one intervention; the `replace` " ..
    "plugin's `sweep` runs them batched (the prompt repeated over the batch, row i carrying intervention i).",
}
local m = L.model
L:sizes { rates = { 9, "rates" }, small_rates = { 9, "small rates" } }
if not m.is_causal then
  error("lesson 17-01 needs a causal language model (GPT-2, GPT-Neo); " .. m.architecture .. " does not predict the next token", 0)
end
local replace = plugin("replace")
local fmt = lesson.fmt
local n_layer = m.n_layer
local demo = L.opts.layer >= 0 and math.min(L.opts.layer, n_layer - 1) or L:layer(9, 36)
local site = "blocks." .. demo .. ".mlp.hook_pre"
local ids = m:tokenize(L.opts.prompt)
local target = tonumber(L.opts.target) or L.opts.target
local target_note = ""
if type(target) == "string" then
  local pieces = lesson.word_ids(m, target)
  if pieces:numel() > 1 then
    target_note = (" (%q is %d tokens for this tokenizer; as the course, the first one is the target)"):format(target, pieces:numel())
  end
end
local function token(id) return ("%q"):format(m:decode({ id })) end

-- 1. The clean run: the demo layer's activations and the prediction --------------------------------
local _, cache = m:run_with_cache(ids, { names = site })
local acts = cache[site][0]                  -- [pos, units]
local units = acts:size(-1)
local main = replace.sweep(m, ids, { rates = L.opts.rates, target = target })
local target_id = main.target
local clean_lp = main.clean_logprobs         -- [vocab]

report.text(("## 1. The clean run\n\nPrompt %q (%d tokens), target %s = token %d%s. Demo layer %d (`%s`, %d units; " ..
  "the course's layer 9 of 36). The model predicts %s next; the target's log-probability is %s.")
  :format(L.opts.prompt, ids:numel(), token(target_id), target_id, target_note, demo, site, units,
    token(main.clean_prediction), fmt(clean_lp[target_id]:item())))
-- The caption describes the histogram from its own numbers: centre, spread and which tail is longer.
local flat = acts:double():flatten()
local mean, sd = flat:mean():item(), flat:std():item()
local skew = ((flat - mean) ^ 3):mean():item() / sd ^ 3
local sorted = flat:sort()
local q10, q90 = sorted[math.floor(0.1 * (flat:numel() - 1))]:item(), sorted[math.floor(0.9 * (flat:numel() - 1))]:item()
local tail = skew > 0.5 and "a longer positive tail" or (skew < -0.5 and "a longer negative tail" or "no marked tail")
local histogram_caption = ("Every token's pre-GELU values at the demo layer (the course bins them over -7..7): " ..
  "median %s, 80%% of the values between %s and %s, skewness %.2f, so %s."):format(fmt(flat:median():item()),
  fmt(q10), fmt(q90), skew, tail)
report.figure(figure.histogram {
  series = { { values = acts, label = "all tokens" } }, bins = 100,
  title = ("Layer %d MLP pre-activations of the prompt"):format(demo), xlabel = "activation", ylabel = "count",
}, { name = "layer_histogram", caption = histogram_caption })

-- The demo replacement: the top 10% of the last token's values set to their median.
local demo_run = replace.run(m, ids, { layer = demo, fraction = 0.1, mode = "median" })
local before = acts[-1]
local median = before:median():item()
local after = before:index_fill(0, demo_run.replaced[0], median)
report.figure(figure.histogram {
  series = { { values = before, label = "before" }, { values = after, label = "after (top 10% -> median)" } },
  bins = 40, title = ("Last token, layer %d: the top 10%% (%d units) replaced by the median %.3g")
    :format(demo, demo_run.replaced:size(1), median),
  xlabel = "activation", ylabel = "count",
}, { name = "demo_replacement", caption = ("Before and after the replacement: the %d largest values move onto the " ..
  "median %s, so the largest value falls from %s to %s."):format(demo_run.replaced:size(1), fmt(median),
  fmt(before:max():item()), fmt(after:max():item())) })

-- Tens of thousands of points make a slow plot: above --vocab-points ids, each point is the
-- highest log-probability of a run of consecutive ids (the upper envelope).
local n_vocab = clean_lp:numel()
local stride = math.max(1, math.ceil(n_vocab / L.opts.vocab_points))
local padded = tensor.cat({ clean_lp, tensor.full({ stride * math.ceil(n_vocab / stride) - n_vocab }, -math.huge) })
local envelope = padded:view({ -1, stride }):max(1)
local vocab = tensor.arange(envelope:numel()) * stride
report.figure(figure.line {
  series = {
    { x = vocab, y = envelope, label = stride > 1 and ("log-softmax (max of every %d ids)"):format(stride) or "log-softmax" },
    -- The target as a vertical bar from the lowest log-probability up to its own value.
    { x = { target_id, target_id }, y = { clean_lp:min():item(), clean_lp[target_id]:item() },
      label = "target " .. token(target_id) },
  },
  title = ("Clean log-softmax at the last token; predicted: %s"):format(token(main.clean_prediction)),
  xlabel = "token id", ylabel = "log-probability",
}, { name = "log_softmax", caption = "The log-softmax over the vocabulary after the prompt; the target is " ..
  "the orange bar (its top is the target's value). The title names the model's top prediction." })

-- 2. Every layer x rate -------------------------------------------------------------------------
local function strip(result, title, name, caption)
  local groups = {}
  for i, layer in ipairs(result.layers) do
    local values = result.delta[i - 1]
    groups[i] = { values = values, label = tostring(layer), color = tensor.full({ values:numel() }, layer) }
  end
  report.figure(figure.strip {
    groups = groups, jitter = 0.3, colorbar_label = "layer", title = title, xlabel = "layer",
    ylabel = "clean - replaced log-prob of the target",
  }, { name = name, caption = caption })
end
local function rate_text(rates)
  local t = {}
  for i, r in ipairs(rates) do t[i] = fmt(100 * r, 3) .. "%" end
  return table.concat(t, ", ")
end

report.text(("## 2. Median replacement at every layer\n\n%d layers × %d rates (%s) = %d interventions in %d " ..
  "forward passes (%.2f s; the course runs one pass each). k = max(1, floor(rate × %d)) units per rate: %s.")
  :format(n_layer, #main.rates, rate_text(main.rates), n_layer * #main.rates, main.forwards - 1, main.seconds,
    units, table.concat(main.k, ", ")))
strip(main, "Median replacement: Δ log-prob of " .. token(target_id) .. " per layer (each point one rate)",
  "sweep_median", "Each point is one layer and rate, jittered sideways and coloured by layer, as the course's " ..
  "plot. Positive: the target lost log-probability.")
local rates_x = tensor.new(main.rates) * 100
local lines = {}
for i, layer in ipairs(main.layers) do
  if #main.layers <= 12 or layer % math.ceil(#main.layers / 12) == 0 then
    lines[#lines + 1] = { x = rates_x, y = main.delta[i - 1], label = "layer " .. layer }
  end
end
-- How much the rate matters, layer by layer: the smallest rate's delta against the largest rate's.
local first_d, last_d = main.delta:select(1, 0), main.delta:select(1, #main.rates - 1)
local similar = (first_d - last_d):abs():le(last_d:abs() * 0.25 + 0.05):sum():item()
local rate_caption = ("A flat line means the rate hardly matters. In %d of %d layers the %s rate's Δ is within 25%% " ..
  "(or 0.05 nats) of the %s rate's."):format(similar, n_layer, rate_text({ main.rates[1] }),
  rate_text({ main.rates[#main.rates] }))
report.figure(figure.line {
  series = lines, markers = true, legend = "outside",
  title = "Δ against the replaced fraction, per layer", xlabel = "replaced units (%)", ylabel = "Δ log-prob",
}, { name = "delta_by_rate", caption = rate_caption })
local columns, data = { "layer" }, { layer = main.layers }
for j, r in ipairs(main.rates) do
  local col = fmt(100 * r, 3) .. "%"
  columns[#columns + 1] = col
  data[col] = main.delta:select(1, j - 1)
end
report.table("Delta per layer and rate", { columns = columns, data = data })
report.tensor("delta_median", main.delta, { caption = "[layers, rates] clean - replaced log-prob of the target" })

-- Small rates.
local small
if L.opts.small then
  small = replace.sweep(m, ids, { rates = L.opts.small_rates, target = target_id })
  report.text(("## 3. Small rates\n\nThe video also tried tiny fractions (%s; k = %s units here).")
    :format(rate_text(small.rates), table.concat(small.k, ", ")))
  strip(small, "Small rates: Δ log-prob of " .. token(target_id) .. " per layer", "sweep_small",
    "The same plot for the small rates. When these already reach the size of the 10–90% effects, the few " ..
    "most active units carry most of the information.")
  report.tensor("delta_small", small.delta, { caption = "[layers, small rates]" })
end

-- Other replacement values.
local by_mode = { median = main }
if L.opts.modes then
  report.text("## 4. Replacement by zero and by the mean\n\nThe same sweep with the top units set to 0 or to " ..
    "the token's mean instead of its median.")
  for _, mode in ipairs({ "zero", "mean" }) do
    by_mode[mode] = replace.sweep(m, ids, { rates = L.opts.rates, target = target_id, mode = mode })
    strip(by_mode[mode], ("Replacement by %s: Δ log-prob per layer"):format(mode), "sweep_" .. mode,
      "Compare with the median plot: the replacement value matters less than which units are replaced.")
  end
  local series = {}
  for _, mode in ipairs({ "median", "zero", "mean" }) do
    series[#series + 1] = { x = tensor.new(main.layers), y = by_mode[mode].delta:mean(1), label = mode }
  end
  report.figure(figure.line {
    series = series, markers = true, title = "Mean Δ over rates per layer, by replacement value",
    xlabel = "layer", ylabel = "mean Δ log-prob",
  }, { name = "modes", caption = "Each line averages one sweep's Δ over its rates." })
end

-- 5. Findings and checks --------------------------------------------------------------------------
local d10, d90 = main.delta:select(1, 0), main.delta:select(1, #main.rates - 1)
local close = 0
for l = 0, n_layer - 1 do
  local a, b = d10[l]:item(), d90[l]:item()
  if math.abs(a - b) <= 0.5 * math.max(math.abs(a), math.abs(b)) then close = close + 1 end
end
local r1090 = stats.pearson(d10:unsqueeze(1), d90)[0]:item()
L:finding(("Δ at %s vs %s replacement"):format(rate_text({ main.rates[1] }), rate_text({ main.rates[#main.rates] })),
  "the two almost overlap in most layers",
  ("within half of each other in %d of %d layers; r across layers = %s"):format(close, n_layer, fmt(r1090)))
if small then
  -- The small rate closest to 2%, against the 10% rate, over the layers after layer 0.
  local best, best_j = math.huge, 0
  for j, r in ipairs(small.rates) do
    if math.abs(r - 0.02) < best then best, best_j = math.abs(r - 0.02), j - 1 end
  end
  local share = {}
  for l = 1, n_layer - 1 do
    local ten = d10[l]:item()
    if math.abs(ten) > 1e-6 then share[#share + 1] = small.delta[l][best_j]:item() / ten end
  end
  table.sort(share)
  local med = #share > 0 and share[(#share + 1) // 2] or 0 / 0
  L:finding(("Δ at %s relative to Δ at 10%% (median over layers 1..%d)"):format(rate_text({ small.rates[best_j + 1] }), n_layer - 1),
    "the top ~1–2% of units carry most of the effect", fmt(med))
else
  L:finding("small rates (0.2–4.5%)", "the top ~1–2% of units carry most of the effect", "not run (--small false)")
end
local layer_means = main.delta:mean(1)
local others = layer_means:narrow(0, 1, n_layer - 1)
local rank = layer_means:gt(layer_means[0]):sum():item() + 1
L:finding("replacement in layer 0", "catastrophic",
  ("mean Δ %s vs median %s over the other layers (rank %d of %d)")
    :format(fmt(layer_means[0]:item()), fmt(n_layer > 1 and others:median():item() or 0 / 0), rank, n_layer))
L:finding("clean prediction after the prompt", ("shown in the plot's title; the target is %q"):format(tostring(L.opts.target)),
  token(main.clean_prediction))
if L.opts.modes then
  L:finding("replacement by zero / mean instead of the median", "offered for comparison",
    ("mean Δ over all cells: median %s, zero %s, mean %s"):format(fmt(main.delta:mean():item()),
      fmt(by_mode.zero.delta:mean():item()), fmt(by_mode.mean.delta:mean():item())))
end

local demo_lp = demo_run.logits[0][-1]:double():log_softmax(-1)[target_id]:item()
local j10
for j, r in ipairs(main.rates) do if math.abs(r - 0.1) < 1e-12 then j10 = j - 1 end end
if j10 then
  L:check("the sweep's layer-" .. demo .. " 10% cell equals replace.run", math.abs(main.logprob[demo][j10]:item() - demo_lp) < 1e-4,
    ("%s vs %s"):format(fmt(main.logprob[demo][j10]:item(), 6), fmt(demo_lp, 6)))
end
L:check("the clean log-softmax is normalised", math.abs(clean_lp:double():exp():sum():item() - 1) < 1e-4,
  "sum of probabilities " .. fmt(clean_lp:double():exp():sum():item(), 6))
if L.opts.check_loop then
  local loop = replace.sweep(m, ids, { rates = L.opts.rates, target = target_id, layers = { demo }, loop = true })
  local diff = (loop.delta[0] - main.delta[demo]):abs():max():item()
  L:check("batched sweep = one pass per intervention (layer " .. demo .. ")", diff < 1e-4, "max |difference| " .. fmt(diff))
end
-- The rate caption's count against the saved [layers, rates] deltas.
local saved = tensor.load(report.dir() .. "/data/delta_median.safetensors")["delta_median"]
local d_first, d_last = saved:select(1, 0), saved:select(1, saved:size(1) - 1)
local recount = (d_first - d_last):abs():le(d_last:abs() * 0.25 + 0.05):sum():item()
L:check("the rate caption's count matches the saved deltas", rate_caption:find(("In %d of"):format(recount), 1, true) ~= nil,
  recount .. " layers")
L:finish()
