-- lesson: 13-12 CC: attention to coffee, MI and token distances (part 2)
-- Lesson 13-11 at every layer: the mutual information between the word's vectors in the attention
-- and in the MLP outputs, and how it relates to distance, from the first layer to the last.
local lesson = require("lib.lesson")
local setup = require("lib.mi_setup")

local L = lesson.start {
  id = "13-12",
  title = "CC: attention to coffee, MI and token distances (part 2)",
  course = "part5_layer_CCMIcoffee (video 218), GPT-2 XL, attn.c_proj and mlp.c_proj of all 48 layers",
  options = {
    text_file = "turkish_coffee.txt",
    word = "coffee",
    bins = 15,
    threshold = 4,
  },
  summary = "As lesson 13-11, at every layer: the `similarity` plugin reads the attention and MLP outputs " ..
    "(`blocks.L.hook_attn_out`, `blocks.L.hook_mlp_out`) of all layers at every occurrence of the word in one " ..
    "batched pass; per layer and output, the mean MI between pairs of occurrences (z-scored, clipped at " ..
    "±threshold, 15 bins) and Kendall's τ of MI against distance.",
}
local m = L.model
local ids = m:tokenize(table.concat(L:data_lines(L.opts.text_file), "\n"))
local rows, width = setup.rows(ids, m.max_positions)
local word = lesson.mid_sentence(m, L.opts.word)
local sites = {}
for l = 0, m.n_layer - 1 do sites[#sites + 1] = ("blocks.%d.hook_attn_out"):format(l) end
for l = 0, m.n_layer - 1 do sites[#sites + 1] = ("blocks.%d.hook_mlp_out"):format(l) end
local V = setup.occurrence_vectors(m, rows, width, word, sites)
local n_layer = m.n_layer
report.text(("%d tokens; %q occurs %d times (%d pairs)."):format(ids:numel(), word, V.n, V.n * (V.n - 1) // 2))

local mean = { attention = {}, MLP = {} }
local tau = { attention = {}, MLP = {} }
local table_rows = {}
for l = 0, n_layer - 1 do
  local row = { l }
  for s, name in ipairs({ "attention", "MLP" }) do
    local r = setup.pairwise(V.vectors[(s - 1) * n_layer + l], V.positions, L.opts.bins, L.opts.threshold)
    mean[name][l + 1] = r.mi_pairs:mean():item()
    tau[name][l + 1] = r.mi_tau.tau
    row[#row + 1] = mean[name][l + 1]
    row[#row + 1] = r.mi_tau.tau
  end
  table_rows[#table_rows + 1] = row
end
local x = tensor.arange(n_layer)
report.figure(figure.line {
  x = x, markers = true, series = { { y = mean.attention, label = "attention output" }, { y = mean.MLP, label = "MLP output" } },
  title = ("Mean MI between %q vectors"):format(word), xlabel = "layer", ylabel = "bits",
}, { name = "mean_mi_per_layer", caption = "Averaged over every pair of occurrences." })
report.figure(figure.line {
  x = x, markers = true, series = { { y = tau.attention, label = "attention output" }, { y = tau.MLP, label = "MLP output" },
    { y = tensor.zeros({ n_layer }), label = "no relation", dashed = true, color = "#888888" } },
  title = "Kendall's τ of MI against distance", xlabel = "layer", ylabel = "τ",
}, { name = "tau_per_layer", caption = "Negative: occurrences further apart share less information." })
report.table("Per layer", { columns = { "layer", "attention: mean MI", "attention: τ", "MLP: mean MI", "MLP: τ" },
  rows = table_rows })

-- The course's reading: MI is higher in early MLP and in later attention layers.
local half = n_layer // 2
local function avg(list, from, to)
  local sum = 0
  for i = from, to do sum = sum + list[i] end
  return sum / (to - from + 1)
end
local early_mlp, early_attn = avg(mean.MLP, 1, half), avg(mean.attention, 1, half)
local late_mlp, late_attn = avg(mean.MLP, half + 1, n_layer), avg(mean.attention, half + 1, n_layer)
L:finding("MI is higher in early MLP and in later attention layers (context processing \"passed off\")", "yes",
  ("first half: MLP %s vs attention %s; second half: MLP %s vs attention %s"):format(lesson.fmt(early_mlp),
    lesson.fmt(early_attn), lesson.fmt(late_mlp), lesson.fmt(late_attn)))
L:finding("the distance–MI correlation stays ≈ −0.5 across layers", "τ ≈ −0.5",
  ("attention τ from %s to %s (mean %s), MLP from %s to %s (mean %s)"):format(
    lesson.fmt(math.min(table.unpack(tau.attention))), lesson.fmt(math.max(table.unpack(tau.attention))),
    lesson.fmt(avg(tau.attention, 1, n_layer)), lesson.fmt(math.min(table.unpack(tau.MLP))),
    lesson.fmt(math.max(table.unpack(tau.MLP))), lesson.fmt(avg(tau.MLP, 1, n_layer))))

-- Check: one layer's figures equal lesson 13-11's computation for that layer alone.
local l = half
local alone = plugin("similarity").vectors(m, rows, { occurrences = (function()
  local positions, row_of = m:find_tokens(rows, word)
  return { rows = row_of, positions = positions }
end)(), sites = ("blocks.%d.hook_mlp_out"):format(l) })
local r = setup.pairwise(alone.vectors[0], V.positions, L.opts.bins, L.opts.threshold)
L:check(("layer %d read alone gives the same mean MI (1e-9)"):format(l),
  math.abs(r.mi_pairs:mean():item() - mean.MLP[l + 1]) < 1e-9)
L:finish()
