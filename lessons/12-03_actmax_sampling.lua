-- lesson: 12-03 Activation maximization via data sampling
-- Instead of optimising an input, search real text: over many random batches of windows, which
-- token drives one residual-stream dimension highest? Count the winners.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-03",
  title = "Activation maximization via data sampling",
  course = "part5_neurons_actMaxSampling (video 187), GPT-Neo 125M, hidden_states[2] dim 345, " ..
    "Alice's Adventures in Wonderland (Gutenberg #11)",
  options = {
    layer = 2,            -- the course's hidden_states index of 12 layers
    dim = 345,
    batch = 32,           -- windows per sample
    seq_len = 256,        -- tokens per window
    samples = 1000,       -- the course's 1000 samples
    seed = 0,
    max_chars = 160000,   -- about the length of the course's book
    top = 20,             -- tokens shown in the chart
  },
  summary = "Each sample draws `batch` random windows of `seq_len` tokens from the text, runs them through the " ..
    "model up to `hidden_states[layer]` (the residual stream entering block `layer`) and records the token " ..
    "at which the chosen dimension is largest over all windows and positions. The `actmax` plugin does this " ..
    "on the model's device with a native hook that keeps only that one dimension. The course used Alice in " ..
    "Wonderland; this run uses the Brown corpus unless `--text FILE` is given (any Gutenberg book works).",
}
local m = L.model
local o = L.opts
local hidden = L:layer(o.layer, 12)
local reductions = {}
if o.samples < 1000 then reductions[#reductions + 1] = ("%d samples instead of 1000"):format(o.samples) end
if o.batch < 32 or o.seq_len < 256 then
  reductions[#reductions + 1] = ("%d windows of %d tokens per sample instead of 32 of 256"):format(o.batch, o.seq_len)
end
L:reduced(reductions, "the course draws 1000 samples of 32 windows x 256 tokens")
local dim, note = L:unit(o.dim, m.d_model)
if note then report.text(note) end
local seq_len = math.min(o.seq_len, m.max_positions)
if seq_len ~= o.seq_len then
  report.text(("This model takes at most %d positions, so windows are %d tokens long."):format(m.max_positions, seq_len))
end

local ids, source = L:tokens { max_chars = o.max_chars }
if ids:numel() < seq_len then error(("the text has %d tokens, fewer than one window of %d"):format(ids:numel(), seq_len), 0) end
local actmax = plugin("actmax")
local r = actmax.sample(m, ids, {
  hidden_state = hidden, unit = dim, batch = o.batch, seq_len = seq_len, samples = o.samples, seed = o.seed,
})
local function token_of(id) return L:token_text(id) end

report.text(("## Which token wins?\n\nThe first %d characters of %s: %d tokens. %d samples of %d windows x %d " ..
  "tokens, `hidden_states[%d]` dimension %d; %s seconds in the plugin."):format(o.max_chars, source, ids:numel(),
  o.samples, o.batch, seq_len, hidden, dim, lesson.fmt(r.seconds)))
local n_tokens = r.ids:numel()
local top = math.min(o.top, n_tokens)
local categories, counts, rows = {}, {}, {}
for i = 0, n_tokens - 1 do
  local id, count = r.ids[i]:item(), r.counts[i]:item()
  local text = token_of(id)
  if i < top then
    categories[#categories + 1] = ("%q"):format(text)
    counts[#counts + 1] = count
  end
  if i < 50 then rows[#rows + 1] = { i + 1, count, 100 * count / r.total, id, ("%q"):format(text) } end
end
report.figure(figure.bar {
  categories = categories, series = { { values = counts, label = "samples won" } },
  title = ("Tokens at the maximum of hidden_states[%d] dim %d (%d samples)"):format(hidden, dim, r.total),
  xlabel = "token", ylabel = "samples", legend = "none",
}, { name = "top_tokens", caption = ("The %d tokens that won most often. A unit tuned to one token (or one kind " ..
  "of token) shows one tall bar; scattered small bars mean no clear preference."):format(top) })
report.table("Token counts", { columns = { "rank", "count", "% of samples", "token id", "token" }, rows = rows })
report.figure(figure.histogram {
  series = { { values = r.peak, label = "max activation per sample" } }, bins = 40,
  title = "The winning activation of each sample", xlabel = "activation", ylabel = "samples", legend = "none",
}, { name = "peaks", caption = "How high the dimension goes at each sample's winning token." })

-- Findings.
local first_id, first_count = r.ids[0]:item(), r.counts[0]:item()
local runners = {}
for i = 1, math.min(4, n_tokens - 1) do runners[#runners + 1] = ("%q"):format(token_of(r.ids[i]:item())) end
L:finding("Most frequent winning token", "\" before\" in about 50% of samples (layer 2, dim 345 of GPT-Neo-125M)",
  ("%q in %s%% of samples (%d of %d)"):format(token_of(first_id), lesson.fmt(100 * first_count / r.total, 3),
    first_count, r.total))
L:finding("Next most frequent", "\" first\", \" faster\", \" quicker\", \" head\" (temporal precedence)",
  #runners > 0 and table.concat(runners, ", ") or "none")
L:finding("Distinct winning tokens", "scattered for other dimensions (e.g. layer 6 dim 5: \"gun\", \"family\", \"states\")",
  ("%d distinct tokens over %d samples"):format(n_tokens, r.total))

-- Checks: the counts add up, and one sample's winner recomputed in Lua from its windows.
L:check("counts sum to the number of samples", r.counts:sum():item() == r.total, ("%d"):format(r.counts:sum():item()))
local windows = ids:index(0, (r.starts[0]:unsqueeze(1) + tensor.arange(seq_len)):flatten()):view({ o.batch, seq_len })
local _, out = m:forward(windows, { hidden_states = true, stop_at_layer = math.min(hidden, m.n_layer - 1) + 1 })
local acts = out.hidden_states[hidden]:select(-1, dim)
local where = acts:argmax():item()
L:check("sample 0's winner = the token at argmax of hidden_states[layer][:, :, dim] over its windows",
  windows:flatten()[where]:item() == r.winners[0]:item(),
  ("%q vs %q"):format(token_of(windows:flatten()[where]:item()), token_of(r.winners[0]:item())))
L:check("sample 0's peak equals that maximum", math.abs(acts:max():item() - r.peak[0]:item()) <= 1e-4 *
  math.max(1, math.abs(r.peak[0]:item())), ("%s vs %s"):format(lesson.fmt(acts:max():item(), 6), lesson.fmt(r.peak[0]:item(), 6)))
L:finish()
