-- lesson: 13-11 CC: attention to coffee, MI and token distances (part 1)
-- Every " coffee" of a text: is the information shared between two occurrences' vectors (the
-- attention output and the MLP output of one layer) smaller when they are further apart?
local lesson = require("lib.lesson")
local setup = require("lib.mi_setup")

local L = lesson.start {
  id = "13-11",
  title = "CC: attention to coffee, MI and token distances (part 1)",
  course = "part5_layer_CCMIcoffee (video 217), GPT-2 XL (48 layers), attn.c_proj and mlp.c_proj of layer 3",
  options = {
    text_file = "turkish_coffee.txt",
    word = "coffee",
    layer = -1,        -- -1: the course's layer 3 of 48 at the same relative depth
    bins = 15,
    threshold = 4,     -- the course's extreme-value threshold on z-scores
  },
  summary = "The text runs through the model in rows of at most its context; the `similarity` plugin reads the " ..
    "attention output (`blocks.L.hook_attn_out`, the course's `attn.c_proj`) and the MLP output " ..
    "(`blocks.L.hook_mlp_out`, `mlp.c_proj`) at every occurrence of the word. Each vector is z-scored over its " ..
    "dimensions and clipped at ±threshold; the mutual information of two occurrences takes their dimensions " ..
    "as paired samples (`stats.mi_matrix`, 15 bins, bits). Kendall's tau (`stats.kendall`) relates every " ..
    "pair's MI to their distance in tokens; the covariance of the same clipped vectors is shown beside it.",
}
local m = L.model
report.text("Substitution: the course reads Wikipedia's article on Turkish coffee; offline, this run reads " ..
  "`lessons/data/" .. L.opts.text_file .. "`, a text on the same subject written for the lesson.")
local ids = m:tokenize(table.concat(L:data_lines(L.opts.text_file), "\n"))
local rows, width = setup.rows(ids, m.max_positions)
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(3, 48)
local word = lesson.mid_sentence(m, L.opts.word)
local sites = { ("blocks.%d.hook_attn_out"):format(layer), ("blocks.%d.hook_mlp_out"):format(layer) }
local V = setup.occurrence_vectors(m, rows, width, word, sites)
report.text(("%d tokens; %q occurs %d times (%d pairs); layer %d."):format(ids:numel(), word, V.n,
  V.n * (V.n - 1) // 2, layer))

local results, table_rows = {}, {}
for s, name in ipairs({ "attention", "MLP" }) do
  local r = setup.pairwise(V.vectors[s - 1], V.positions, L.opts.bins, L.opts.threshold)
  results[name] = r
  report.figure(figure.scatter {
    x = r.distance, y = r.mi_pairs, alpha = 0.6,
    title = ("%s output, layer %d: MI between two %q vectors (Kendall τ = %.2f)"):format(name, layer, word,
      r.mi_tau.tau),
    xlabel = "distance (tokens)", ylabel = "MI (bits)",
  }, { name = "mi_vs_distance_" .. name:lower(), caption = "One point per pair of occurrences." })
  table_rows[#table_rows + 1] = { name, r.mi_tau.tau, r.mi_tau.p, r.cov_tau.tau, r.cov_tau.p, r.cut }
end
report.figure(figure.heatmap {
  values = results.attention.mi, title = ("MI between the %q vectors, attention output"):format(word),
  xlabel = "occurrence", ylabel = "occurrence", colorbar_label = "bits",
}, { name = "mi_matrix_attention", caption = "Occurrences in reading order; the diagonal is each vector's entropy." })
report.table("Kendall's τ against distance", {
  columns = { "output", "MI: τ", "MI: p", "covariance: τ", "covariance: p", "values clipped" },
  rows = table_rows,
})

L:finding("MI between the word's vectors decreases with their distance (Kendall τ ≈ −0.5)", "τ ≈ −0.5",
  ("attention τ = %s (p = %s), MLP τ = %s (p = %s)"):format(lesson.fmt(results.attention.mi_tau.tau),
    lesson.fmt(results.attention.mi_tau.p), lesson.fmt(results.MLP.mi_tau.tau), lesson.fmt(results.MLP.mi_tau.p)))

-- Checks: the matrix's entries are the pairwise estimator; the vectors are the hook's activations.
local z = setup.clip(V.vectors[0], L.opts.threshold)
local one = stats.mi_binned(z[0], z[1], { bins = L.opts.bins }):item()
L:check("an entry of the MI matrix equals stats.mi_binned of the two vectors (1e-12)",
  math.abs(one - results.attention.mi[0][1]:item()) < 1e-12)
local first_row = ids:narrow(0, 0, math.min(ids:numel(), m.max_positions))
local _, cache = m:run_with_cache(first_row:unsqueeze(0), { names = sites[2] })
local at = V.positions[0]:item()
local diff = (cache[sites[2]][0][at]:float() - V.vectors[1][0]):abs():max():item()
L:check("the plugin's MLP vector at the first occurrence is the hook's activation (1e-5)", diff < 1e-5,
  lesson.fmt(diff))
L:finish()
