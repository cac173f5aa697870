-- lesson: 12-13 CodeChallenge: Activation histograms by token length (part 3)
-- The correlation of every MLP neuron with token length, layer by layer: one distribution of r
-- per layer (lines and a layers x r heatmap), and the same for a second model side by side.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-13",
  title = "CodeChallenge: Activation histograms by token length (part 3)",
  course = "part5_neurons_CCactivationByLength (video 197), GPT-Neo 125M and (exercise 7) GPT-Neo 1.3B, " ..
    "every block's MLP, 8192 FineWeb tokens",
  options = {
    tokens = 8192,     -- the first tokens of the text
    batch_rows = 16,   -- rows per forward pass
    seq_len = 512,     -- tokens per row (at most each model's max_positions)
    model2 = "",       -- a second model folder to compare (the course's GPT-Neo 1.3B); "" for none
  },
  summary = "The `token_length` plugin streams, in native hooks on every block's `blocks.L.mlp.hook_pre` " ..
    "(pre-GELU), the Pearson r of every neuron with token length and a density histogram of those r values " ..
    "per layer (bins `linspace(-0.8, 0.8, 81)`). The course draws (a) one line per layer coloured by depth " ..
    "and (b) an image of layers x r bins; it then reruns everything on GPT-Neo 1.3B (`--model2 DIR` here).",
}
local tl = plugin("token_length")
local text, source = L:text()
text = text:sub(1, 16 * L.opts.tokens)   -- plenty for the tokens wanted, and quick to tokenise

local function quantile(t, q)
  local sorted = t:sort()
  return sorted[math.floor(q * (t:numel() - 1) + 0.5)]:item()
end

-- One model: scan every layer, draw the lines and the heatmap, and summarise each layer's r.
local function analyse(m, label, key)
  local ids = m:tokenize(text)
  local res = tl.scan(m, ids, { tokens = L.opts.tokens, batch_rows = L.opts.batch_rows,
    seq_len = math.min(L.opts.seq_len, m.max_positions) })
  local n_layer = #res.layers
  local r_edges = res.r_edges
  local centres = (r_edges:slice(0, 0, -1) + r_edges:slice(0, 1)) / 2
  report.text(("## %s\n\n`%s`: %d layers x %d neurons, the first %d tokens of %s (rows of %d), median length %s.")
    :format(label, tostring(m), n_layer, res.neurons, res.tokens, source, res.seq_len, lesson.fmt(res.median)))

  local series = {}
  for k = 0, n_layer - 1 do series[#series + 1] = { y = res.r_density[k], label = "layer " .. res.layers[k + 1] } end
  report.figure(figure.line {
    x = centres, series = series, legend = n_layer > 12 and "none" or "outside",
    title = ("%s: r with token length, one line per layer"):format(label),
    xlabel = "Pearson r with token length", ylabel = "density",
  }, { name = key .. "_r_lines", caption = "Density of the neurons' r values in each layer " ..
    "(the course colours the lines by depth with `plasma`; here each layer has its own colour" ..
    (n_layer > 12 and ", legend omitted for this many layers; the heatmap below gives the order" or "") ..
    "). A line left of 0 is a layer whose neurons fire more for short tokens." })

  local xlabels, ylabels = {}, {}
  for i = 0, centres:numel() - 1 do
    xlabels[i + 1] = i % 10 == 0 and ("%.2f"):format(r_edges[i]:item()) or ""
  end
  for k = 1, n_layer do ylabels[k] = "layer " .. res.layers[k] end
  report.figure(figure.heatmap {
    values = res.r_density, vmin = 0, vmax = 4, xlabels = xlabels, ylabels = ylabels,
    colorbar_label = "density", title = ("%s: distribution of r per layer"):format(label),
    xlabel = "Pearson r with token length (left edge of every 10th bin)", ylabel = "layer",
  }, { name = key .. "_r_heatmap", caption = "Rows are layers (layer 0 at the top), columns r " ..
    "bins, colour the density of r (0 to 4, as the course). Watch where each row's bright band sits relative to " ..
    "0, and how wide it is." })

  local rows, summary = {}, {}
  for k = 0, n_layer - 1 do
    local r = res.r[k]
    r = r:masked_select(r:eq(r))   -- nan (a constant neuron) left out
    local s = { layer = res.layers[k + 1], median = r:median():item(), mean = r:mean():item(), std = r:std():item(),
      negative = r:lt(0):sum():item() / r:numel(), abs = r:abs():mean():item(),
      q05 = quantile(r, 0.05), q95 = quantile(r, 0.95) }
    summary[k + 1] = s
    rows[#rows + 1] = { s.layer, s.median, s.mean, s.std, s.q05, s.q95, s.negative }
  end
  report.table(label .. ": r per layer", {
    columns = { "layer", "median r", "mean r", "std of r", "5% quantile", "95% quantile", "share negative" },
    rows = rows })
  report.tensor(key .. "_r", res.r, { caption = "[layers, neurons] Pearson r with token length" })
  return res, summary
end

-- Where the density of short tokens' activations peaks at a layer: local maxima above 10% of the top.
local function peaks(density)
  local d = density:tolist()
  local top, count = 0, 0
  for _, v in ipairs(d) do top = math.max(top, v) end
  for i = 2, #d - 1 do
    if d[i] >= 0.1 * top and d[i] > d[i - 1] and d[i] >= d[i + 1] then count = count + 1 end
  end
  return count
end

local function mean_of(summary, from, to, field)
  local total, n = 0, 0
  for k = from, to do total, n = total + summary[k][field], n + 1 end
  return n > 0 and total / n or 0 / 0
end

-- Thirds of the depth (1-based indices into the summary): early, middle, late.
local function thirds(n)
  local a = math.max(1, n // 3)
  local b = math.max(a + 1, (2 * n) // 3)
  return { 1, a }, { a + 1, b }, { math.min(b + 1, n), n }
end

local function describe(m_) return ("%s (%d layers, d_model %d)"):format(m_.architecture, m_.n_layer, m_.d_model) end
local m = L.model
L:sizes { tokens = { 8192, "tokens of the text" } }
local m2 = L.opts.model2 ~= "" and model.load(L.opts.model2) or nil
local label1, label2 = describe(m), m2 and describe(m2)
if label1 == label2 then label1, label2 = label1 .. " [--model]", label2 .. " [--model2]" end
local res1, sum1 = analyse(m, label1, "model")
local n1 = #sum1

local negative_layers = 0
for _, s in ipairs(sum1) do if s.median < 0 then negative_layers = negative_layers + 1 end end
local early, middle, late = thirds(n1)
local std_early = mean_of(sum1, early[1], early[2], "std")
local std_middle = mean_of(sum1, middle[1], middle[2], "std")
local std_late = mean_of(sum1, late[1], late[2], "std")
local abs_early = mean_of(sum1, early[1], early[2], "abs")
local abs_rest = mean_of(sum1, math.min(early[2] + 1, n1), n1, "abs")

-- The second model, side by side -----------------------------------------------------------------
local comparison = "not run (pass `--model2 DIR`)"
if not m2 then
  report.text("## The second model\n\nThe course repeats the analysis on GPT-Neo 1.3B and compares the two models " ..
    "layer by layer at the same relative depth. No second model was given to this run, so that comparison is not " ..
    "shown: pass `-- --model2 DIR` with any GPT-2 or GPT-Neo folder (or hub name in the cache) to add it.")
end
if m2 then
  local res2, sum2 = analyse(m2, label2, "model2")
  local n2 = #sum2

  -- r by relative depth, both models on one axis.
  local function depth_series(summary, field, label)
    local x, y = {}, {}
    for k, s in ipairs(summary) do
      x[k] = #summary > 1 and (k - 1) / (#summary - 1) or 0
      y[k] = s[field]
    end
    return { x = x, y = y, label = label }
  end
  report.text("## The two models side by side")
  report.figure(figure.line {
    series = { depth_series(sum1, "median", label1 .. " median"), depth_series(sum2, "median", label2 .. " median"),
      depth_series(sum1, "std", label1 .. " std"), depth_series(sum2, "std", label2 .. " std") },
    markers = true, title = "r with token length by relative depth",
    xlabel = "relative depth (layer / (layers - 1))", ylabel = "r", legend = "below", height = 700,
  }, { name = "depth_comparison", caption = "The median and the spread (standard deviation) of each layer's r " ..
    "values, layers placed at their relative depth so models of different depth line up." })

  -- Activation histograms of the three length groups at each model's middle layer.
  local function middle_series(m_, res, label)
    local k = m_.n_layer // 2
    local centres = (res.edges:slice(0, 0, -1) + res.edges:slice(0, 1)) / 2
    local out = {}
    for g, name in ipairs({ "shorter", "median", "longer" }) do
      out[#out + 1] = { x = centres, y = res.density[k][g - 1], label = ("%s, layer %d, %s"):format(label, k, name) }
    end
    return out, k
  end
  local s1, k1 = middle_series(m, res1, label1)
  local s2, k2 = middle_series(m2, res2, label2)
  for _, s in ipairs(s2) do s1[#s1 + 1] = s end
  report.figure(figure.line {
    series = s1, title = "Activations by token length at each model's middle layer",
    xlabel = "activation (before GELU)", ylabel = "density", legend = "below", height = 800,
  }, { name = "middle_layer_densities", caption = "Density histograms of the MLP pre-activations of short, " ..
    "median-length and long tokens. The course found the larger model's distributions multimodal (for short " ..
    "tokens especially), unlike the smaller one's: look for extra peaks." })
  local p1, p2 = peaks(res1.density[k1][0]), peaks(res2.density[k2][0])
  local neg2 = 0
  for _, s in ipairs(sum2) do if s.median < 0 then neg2 = neg2 + 1 end end
  comparison = ("short-token density peaks at the middle layer: %d (%s) vs %d (%s); layers with median r < 0: " ..
    "%d/%d vs %d/%d"):format(p1, label1, p2, label2, negative_layers, n1, neg2, n2)
end

-- Checks: each r histogram holds every neuron whose r falls inside the bins.
local hist_ok = true
for k = 0, n1 - 1 do
  local r = res1.r[k]
  local inside = r:ge(res1.r_edges[0]:item()):sum():item() - r:gt(res1.r_edges[-1]:item()):sum():item()
  hist_ok = hist_ok and res1.r_counts[k]:sum():item() == inside
end
L:check("r histograms count every neuron inside the bins", hist_ok, ("%d layers x %d neurons"):format(n1, res1.neurons))
L:check("r values are correlations", res1.r:masked_select(res1.r:eq(res1.r)):abs():max():item() <= 1,
  ("max |r| %s"):format(lesson.fmt(res1.r:masked_select(res1.r:eq(res1.r)):abs():max():item())))

L:finding("Layers centred below 0", "most layers (slightly negative)",
  ("%d of %d layers have median r < 0"):format(negative_layers, n1))
L:finding("First block", "the exception: positive r (long tokens activate more)",
  ("layer 0: median r %s, %.0f%% of neurons negative"):format(lesson.fmt(sum1[1].median), 100 * sum1[1].negative))
L:finding("Late layers", "r distributions narrow toward 0",
  ("std of r: early %s, middle %s, late %s"):format(lesson.fmt(std_early), lesson.fmt(std_middle), lesson.fmt(std_late)))
L:finding("Early blocks and superficial features (syllabus)", "early blocks relate more to length",
  ("mean |r|: first third %s, the rest %s"):format(lesson.fmt(abs_early), lesson.fmt(abs_rest)))
L:finding("The larger model (GPT-Neo 1.3B)", "multimodal activation distributions; shapes differ (no universality)",
  comparison)
L:finish()
