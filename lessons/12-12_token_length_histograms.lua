-- lesson: 12-12 CodeChallenge: Activation histograms by token length (part 2)
-- One middle layer's MLP pre-activations for short, median-length and long tokens (density
-- histograms pooled over neurons), and the Pearson r of every neuron with token length.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-12",
  title = "CodeChallenge: Activation histograms by token length (part 2)",
  course = "part5_neurons_CCactivationByLength (video 196), GPT-Neo 125M, mlp_4 (block 4 of 12), 8192 FineWeb tokens",
  options = {
    tokens = 8192,      -- the first tokens of the text
    layer = -1,         -- -1: the course's block 4 of 12 at the same relative depth
    batch_rows = 16,    -- rows per forward pass (the course: one pass of 16 x 512)
    seq_len = 512,      -- tokens per row (at most the model's max_positions)
    r_bins = 100,       -- bins of the histogram of r (the course's 100)
    check_tokens = 512, -- tokens whose activations are captured to check r against stats.pearson
  },
  summary = "The `token_length` plugin runs the text through the model in rows of `seq_len` tokens and, in a " ..
    "native hook on `blocks.L.mlp.hook_pre` (the MLP's pre-GELU activations, Hugging Face's `mlp.c_fc` " ..
    "output), streams density histograms of the activations of each length group (all neurons pooled, bins " ..
    "`linspace(-8, 5, 51)`) and the Pearson r of every neuron with token length, without keeping the " ..
    "activations. Groups: tokens shorter than, equal to and longer than the median length.",
}
local m = L.model
L:sizes { tokens = { 8192, "tokens of the text" } }
local tl = plugin("token_length")
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:layer(4, 12)
local site = "blocks." .. layer .. ".mlp.hook_pre"
local seq_len = math.min(L.opts.seq_len, m.max_positions)

local ids, source = L:tokens { max_tokens = L.opts.tokens, max_chars = 16 * L.opts.tokens }
local res = tl.scan(m, ids, { tokens = L.opts.tokens, layers = { layer }, batch_rows = L.opts.batch_rows,
  seq_len = seq_len })
local n, median, neurons = res.tokens, res.median, res.neurons
local names = { "shorter", "median length", "longer" }
report.set({ layer = layer, tokens = n })

-- 1. Density histograms per length group --------------------------------------------------------
local edges = res.edges
local centres = (edges:slice(0, 0, -1) + edges:slice(0, 1)) / 2
local series = {}
for g = 0, 2 do
  series[#series + 1] = { y = res.density[0][g], label = ("%s (%d tokens)"):format(names[g + 1], res.group_counts[g]:item()) }
end
report.text(("## 1. Activations by token length, block %d\n\nThe first %d tokens of %s in rows of %d; " ..
  "median length %s. `%s` has %d neurons, so each group's histogram pools tokens x %d values.")
  :format(layer, n, source, res.seq_len, lesson.fmt(median), site, neurons, neurons))
report.figure(figure.line {
  x = centres, series = series,
  title = ("Block %d MLP pre-activations by token length"):format(layer),
  xlabel = "activation (before GELU)", ylabel = "density",
}, { name = "density_by_length", caption = "Density histograms (bins `linspace(-8, 5, 51)`, all neurons pooled) " ..
  "for tokens shorter than, equal to and longer than the median length. Look at how much the three curves " ..
  "overlap, and whether the long tokens' curve sits to the left (more negative)." })

-- Overlap of two densities: the area under the smaller of the two (1 = identical histograms).
local width = edges:slice(0, 1) - edges:slice(0, 0, -1)
local function overlap(a, b)
  local p, q = res.density[0][a], res.density[0][b]
  return (tensor.where(p:lt(q), p, q) * width):sum():item()
end
local group_rows = {}
for g = 0, 2 do
  local count = res.group_counts[g]:item()
  group_rows[#group_rows + 1] = { names[g + 1], count, res.means[0][g]:item(),
    count > 0 and res.outside[0][g]:item() / (count * neurons) or 0 / 0 }
end
report.table("Length groups", { columns = { "group", "tokens", "mean activation", "share outside the bins" },
  rows = group_rows })
local short_long = overlap(0, 2)
local shift = res.means[0][2]:item() - res.means[0][0]:item()
report.text(("The short and long tokens' histograms share %.0f%% of their area; the long tokens' mean activation " ..
  "is %s %s the short tokens'."):format(100 * short_long, lesson.fmt(math.abs(shift)),
  shift < 0 and "below" or "above"))

-- 2. Correlation of every neuron with length --------------------------------------------------------
local r = res.r[0]   -- [neurons]
local valid = r:masked_select(r:eq(r))   -- nan (a constant neuron) left out
local negative = valid:lt(0):sum():item() / valid:numel()
local median_r = valid:median():item()
report.text(("## 2. Correlation of each neuron with token length\n\nFor every neuron, Pearson r between its " ..
  "activation and the token's length over the %d tokens (the course z-scores both with ddof = 1 and takes " ..
  "`sum(z_len * z_act) / (n - 1)`, which is the same number).")
  :format(n))
report.figure(figure.histogram {
  series = { { values = valid, label = "neurons" } }, bins = L.opts.r_bins,
  title = ("Block %d: r of each of %d neurons with token length"):format(layer, neurons),
  xlabel = "Pearson r with token length", ylabel = "neurons", legend = "none",
}, { name = "r_histogram", caption = ("Histogram of r (%d bins). Most of the mass left of 0 means most neurons " ..
  "are more active for short tokens; %.0f%% of r values here are negative, median r %s.")
  :format(L.opts.r_bins, 100 * negative, lesson.fmt(median_r)) })
local top_neg, neg_idx = r:topk(5, -1, false)
local top_pos, pos_idx = r:topk(5)
local rows = {}
for i = 0, 4 do
  rows[#rows + 1] = { neg_idx[i]:item(), top_neg[i]:item(), pos_idx[i]:item(), top_pos[i]:item() }
end
report.table("Most length-tuned neurons", { columns = { "most negative", "r", "most positive", "r (positive)" },
  rows = rows })
report.tensor("r", r, { caption = ("Pearson r with token length of each neuron of %s"):format(site) })

-- Token length is confounded with frequency: short tokens are the common ones.
local counts_by_id = {}
for i = 0, n - 1 do
  local id = ids[i]:item()
  counts_by_id[id] = (counts_by_id[id] or 0) + 1
end
local freq_list = {}
for i = 0, n - 1 do freq_list[i + 1] = counts_by_id[ids[i]:item()] end
local freq = tensor.new(freq_list, { dtype = "float64" })
local r_freq = stats.pearson(freq:log(), res.lengths:double()):item()
report.text(("Length and frequency go together: over these tokens, r between a token's length and the log of " ..
  "how often it occurs in the text is %.2f. A neuron tuned to frequent tokens looks tuned to short ones.")
  :format(r_freq))

-- Checks: the streamed r equals stats.pearson (and the course's z-score formula) on activations
-- captured for a small slice, cut into rows the same way.
local check_n = math.min(L.opts.check_tokens, n)
local small = tl.scan(m, ids, { tokens = check_n, layers = { layer }, batch_rows = L.opts.batch_rows, seq_len = seq_len })
local parts, full = {}, check_n // small.seq_len
if full > 0 then
  local _, cache = m:run_with_cache(ids:narrow(0, 0, full * small.seq_len):reshape({ full, small.seq_len }),
    { names = site, stop_at_layer = layer + 1 })
  parts[#parts + 1] = cache[site]:reshape({ full * small.seq_len, -1 })
end
if check_n % small.seq_len > 0 then
  local _, cache = m:run_with_cache(ids:narrow(0, full * small.seq_len, check_n % small.seq_len):reshape({ 1, -1 }),
    { names = site, stop_at_layer = layer + 1 })
  parts[#parts + 1] = cache[site]:reshape({ check_n % small.seq_len, -1 })
end
local acts = tensor.cat(parts, 0):double()   -- [check_n, neurons]
local y = small.lengths:double()
local direct = stats.pearson(acts, y)
local za = (acts - acts:mean(0)) / acts:std(0)
local zy = (y - y:mean()) / y:std()
local zscore = (za * zy:unsqueeze(1)):sum(0) / (check_n - 1)
local function maxdiff(a, b)
  local ok = a:eq(a)   -- not nan
  return (a:masked_select(ok) - b:masked_select(ok)):abs():max():item()
end
local d1, d2 = maxdiff(direct, small.r[0]), maxdiff(zscore, small.r[0])
L:check("streamed r = stats.pearson on captured activations", d1 < 1e-5,
  ("first %d tokens, max |diff| %s"):format(check_n, lesson.fmt(d1)))
L:check("streamed r = the course's z-score formula (ddof 1)", d2 < 1e-5, ("max |diff| %s"):format(lesson.fmt(d2)))
local labels = tensor.where(y:lt(small.median), 0, tensor.where(y:eq(small.median), 1, 2))
local same = true
for g = 0, 2 do
  local values = acts:index(0, labels:eq(g):nonzero():reshape({ -1 })):reshape({ -1 })
  same = same and small.counts[0][g]:equal(stats.histogram(values, small.edges))
end
L:check("streamed histograms = stats.histogram on captured activations", same, ("first %d tokens"):format(check_n))
L:check("every activation counted once", res.counts[0]:sum():item() + res.outside[0]:sum():item() == n * neurons,
  ("%d tokens x %d neurons"):format(n, neurons))

L:finding("Histograms of short / median / long tokens", "overlap heavily",
  ("short and long share %.0f%% of their area"):format(100 * short_long))
L:finding("Long tokens' activations", "shifted slightly toward negative",
  ("mean %s than short tokens' (%s vs %s)"):format(shift < 0 and ("%s lower"):format(lesson.fmt(-shift)) or
    ("%s higher"):format(lesson.fmt(shift)), lesson.fmt(res.means[0][2]:item()), lesson.fmt(res.means[0][0]:item())))
L:finding("Neurons' r with token length", "mostly weakly negative",
  ("%.0f%% negative, median r %s, %.0f%% with |r| < 0.2"):format(100 * negative, lesson.fmt(median_r),
    100 * valid:abs():lt(0.2):sum():item() / valid:numel()))
L:finding("Length vs frequency", "confounded", ("r(length, log frequency) = %.2f"):format(r_freq))
L:finish()
