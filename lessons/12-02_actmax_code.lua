-- lesson: 12-02 Activation maximization (code)
-- Gradient ascent on five free input embeddings to drive one residual-stream dimension up, then
-- each optimised vector decoded to its nearest vocabulary token by cosine similarity.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-02",
  title = "Activation maximization (code)",
  course = "part5_neurons_activationMaximization (video 186), GPT-2 small, hidden_states[8] dim 91",
  options = {
    layer = 8,        -- the course's hidden_states index (the input of block 8) of 12 layers
    dim = 91,         -- the residual-stream dimension
    seq_len = 5,
    steps = 500,
    lr = 0.001,
    lambda = 0.01,    -- the L2 penalty on the embeddings
    seed = 0,
  },
  summary = "Five embedding vectors start as N(0, std of the token-embedding matrix) and Adam changes them " ..
    "to maximise the mean over positions of one dimension of `hidden_states[layer]` (the residual stream " ..
    "entering block `layer`; the model still adds its position embeddings), with the loss " ..
    "`-activation + lambda * sum(E^2)`. The `actmax` plugin runs the loop in C++ and stops the forward pass " ..
    "at that block. Each optimised vector is then decoded to the vocabulary token whose embedding has the " ..
    "highest cosine similarity with it.",
}
local m = L.model
local o = L.opts
L:sizes { steps = { 500, "ascent steps" } }
local hidden = L:layer(o.layer, 12)
local dim, note = L:unit(o.dim, m.d_model)
if note then report.text(note) end
if hidden ~= o.layer then
  report.text(("The course's `hidden_states[%d]` of 12 layers is `hidden_states[%d]` at the same relative depth " ..
    "of this %d-layer model."):format(o.layer, hidden, m.n_layer))
end

local actmax = plugin("actmax")
local r = actmax.optimize(m, {
  hidden_state = hidden, unit = dim, seq_len = o.seq_len, steps = o.steps, lr = o.lr, lambda = o.lambda, seed = o.seed,
})
local vocab = m:embed(tensor.arange(m.vocab_size))[0] -- [vocab, d_model]
local std = r.embedding_std
local tokens = r.tokens or {}
for i = 1, r.ids:numel() do tokens[i] = tokens[i] or L:token_text(r.ids[i - 1]:item()) end
local text = r.text or table.concat(tokens, " ")

-- 1. The embedding matrix, the random start and the optimised vectors.
report.text("## Embedding values")
local range = math.max(5 * std, r.embeddings:abs():max():item())
local edges = tensor.linspace(-range, range, 81)
report.figure(figure.histogram {
  series = {
    { values = vocab, label = "token embeddings (all " .. m.vocab_size .. " rows)" },
    { values = r.init, label = "random start N(0, std)" },
    { values = r.embeddings, label = "optimised" },
  },
  edges = edges, density = true,
  title = "Values of the embedding matrix, the random start and the optimised embeddings",
  xlabel = "value", ylabel = "density",
}, { name = "embedding_values", caption = ("80 bins, each distribution normalised to unit area (the course " ..
  "max-normalised each one and cut the x-axis at [-1, 1]). The start matches the matrix's spread " ..
  "(std %s) by design; after %d steps the optimised values show how far the ascent moved them."):format(
  lesson.fmt(std), o.steps) })

-- 2. The ascent: target and neighbour, and the gradient norm.
report.text("## The ascent")
local steps = tensor.arange(o.steps)
report.figure(figure.line {
  x = steps,
  series = {
    { y = r.activation, label = ("target: dim %d"):format(dim) },
    { y = r.neighbour, label = ("neighbour: dim %d"):format(r.neighbour_unit) },
  },
  title = ("Mean activation of hidden_states[%d] over the %d positions"):format(hidden, o.seq_len),
  xlabel = "step", ylabel = "activation",
}, { name = "activation", caption = "The target dimension (what the loss rewards) against its neighbour, which " ..
  "the course printed for contrast: only the target is driven." })
report.figure(figure.line {
  x = steps, series = { { y = r.grad_norm, label = "||dLoss/dE||" } },
  title = "Gradient norm of the embeddings", xlabel = "step", ylabel = "gradient norm", legend = "none",
}, { name = "grad_norm", caption = "The L2 norm of the loss's gradient with respect to the five vectors at each " ..
  "step (the course's E.grad.norm())." })
local rows = {}
for s = 0, o.steps - 1, 23 do
  rows[#rows + 1] = { s, r.activation[s]:item(), r.neighbour[s]:item(), r.grad_norm[s]:item() }
end
rows[#rows + 1] = { "after " .. o.steps, r.final_activation, r.final_neighbour, "" }
report.table("Every 23rd step", { columns = { "step", "target", "neighbour", "gradient norm" }, rows = rows })

-- 3. The optimised matrix.
report.figure(figure.heatmap {
  values = r.embeddings, palette = "diverging", vmin = -2 * std, vmax = 2 * std,
  title = ("Optimised embeddings [%d x %d]"):format(o.seq_len, m.d_model),
  xlabel = "embedding dimension", ylabel = "position", colorbar_label = "value",
  ylabels = (function() local l = {} for i = 0, o.seq_len - 1 do l[#l + 1] = tostring(i) end return l end)(),
}, { name = "optimised_matrix", caption = ("Colour limits +/- 2 std of the embedding matrix (+/- %s; the course " ..
  "used +/- 0.3 on GPT-2, whose std is about 0.14). Dimension %d is column %d."):format(lesson.fmt(2 * std), dim, dim) })

-- 4. Decoding: cosine similarity of position 0 to every token, and the decoded sequence.
report.text("## Decoding by cosine similarity")
local cos0 = r.cosine[0]
-- Every token in order, drawn as the max and min over blocks of consecutive ids (about 1000
-- blocks): the same picture as plotting all of them, without drawing 50k points.
local block = math.max(1, math.ceil(m.vocab_size / 1000))
local blocks = math.ceil(m.vocab_size / block)
local padded = tensor.cat({ cos0, tensor.full({ blocks * block - m.vocab_size }, cos0[-1]:item()) }):view({ blocks, block })
local block_max, block_min = padded:max(1), padded:min(1)
report.figure(figure.line {
  x = tensor.arange(blocks) * block,
  series = { { y = block_max, label = "max over each block" }, { y = block_min, label = "min over each block" } },
  title = ("Cosine similarity of optimised vector 0 to every token (max %s: %q)"):format(
    lesson.fmt(r.similarity[0]:item()), tokens[1]),
  xlabel = ("token id (blocks of %d)"):format(block), ylabel = "cosine similarity",
}, { name = "cosine_position0", caption = "Cosine similarity of the first optimised vector with each of the " ..
  m.vocab_size .. " token embeddings, by token id (the upper line is the best token of each block of ids). Even " ..
  "the best-matching token is far from the optimised vector: the optimum lies off the set of real tokens." })
local decoded = {}
for i = 0, o.seq_len - 1 do
  decoded[#decoded + 1] = { i, r.ids[i]:item(), ("%q"):format(tokens[i + 1]), r.similarity[i]:item() }
end
report.table("Decoded tokens", { columns = { "position", "token id", "token", "cosine similarity" }, rows = decoded })
report.text(("Decoded sequence: `%s`"):format(text:gsub("\n", "\\n")))
report.tensor("optimised_embeddings", r.embeddings, { caption = "the optimised [seq_len, d_model] embeddings" })

-- Findings, course vs this run.
local a0, a1 = r.initial_activation, r.final_activation
local orders = (a0 ~= 0) and math.log(math.abs(a1) / math.abs(a0), 10) or math.huge
local best = r.similarity:max():item()
L:finding("Target activation over the ascent", "rises from about 0 to very large values (~3 orders of magnitude)",
  ("%s -> %s (%s orders of magnitude in absolute value)"):format(lesson.fmt(a0), lesson.fmt(a1), lesson.fmt(orders, 2)))
L:finding("Neighbouring dimension", "suppressed; not driven up",
  ("%s -> %s"):format(lesson.fmt(r.neighbour[0]:item()), lesson.fmt(r.final_neighbour)))
L:finding("Top cosine similarity of a decoded vector to any token", "about 0.17",
  ("%s (mean over positions %s)"):format(lesson.fmt(best, 2), lesson.fmt(r.similarity:mean():item(), 2)))
L:finding("Decoded text", "gibberish, e.g. \"ad pc brisk brisk breast\"", ("%q"):format(text))
L:finding("Site", "hidden_states[8] dim 91 (notebook; the notes say layer 4, dim 90)",
  ("hidden_states[%d] dim %d of %d layers"):format(hidden, dim, m.n_layer))

-- Checks: the ascent did its job, and the plugin looked where the lesson says.
L:check("the target activation rose", a1 > a0, ("%s -> %s"):format(lesson.fmt(a0), lesson.fmt(a1)))
local _, out = m:forward({ embeds = r.embeddings:unsqueeze(0) }, { hidden_states = true })
local direct = out.hidden_states[hidden][0]:select(-1, dim):mean():item()
L:check("final activation = hidden_states[layer][0, :, dim].mean() of the optimised embeddings",
  math.abs(direct - a1) <= 1e-4 * math.max(1, math.abs(a1)), ("%s vs %s"):format(lesson.fmt(direct, 6), lesson.fmt(a1, 6)))
L:check("decoded ids are vocabulary ids", r.ids:ge(0):all() and r.ids:lt(m.vocab_size):all())
L:check("similarities lie in [-1, 1]", r.similarity:ge(-1):all() and r.similarity:le(1):all(),
  ("max %s"):format(lesson.fmt(best)))
L:check("position 0's token is the argmax of its cosine similarities", cos0:argmax():item() == r.ids[0]:item())
L:finish()
