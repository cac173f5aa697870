-- lesson: 16-04 Impact of head-silencing on cosine similarity
-- Silence one attention head in an early layer and compare, at every later hidden state, how
-- similar the sentence's tokens are to each other with and without it: does the effect fade or
-- build up with depth?
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "16-04",
  title = "Impact of head-silencing on cosine similarity",
  course = "part6_attention_silencingCosineSimilarity (video 261), GPT-2 medium (24 layers), head 1 of layer 3 (and 5)",
  options = {
    prompt = "Peanut butter and pineapple taste great on pizza",
    layer = -1,   -- -1: the course's layer 3 of 24 at the same relative depth
    head = 1,
    alpha = 0.05,
  },
  summary = "The `heads` plugin silences head `head` of layer `layer` at every token (its output at " ..
    "`blocks.L.attn.hook_z`, before the output projection, set to zero) and, with `token_similarity`, returns " ..
    "every hidden state's cosine similarities between the tokens, silenced and clean; the " ..
    "changes of its entries above the diagonal are t-tested against 0 (`stats.ttest_1samp`), with the " ..
    "Bonferroni threshold alpha / hidden states, as the course's 0.05 / 24. The token pairs share tokens, so " ..
    "they are not independent samples and the p-values are a guide, as in the course.",
}
local m = L.model
local layer = L.opts.layer >= 0 and math.min(L.opts.layer, m.n_layer - 1) or L:course_layer(3, 24)
local heads = plugin("heads")
local r = heads.ablate(m, L.opts.prompt, { layers = { layer }, heads = { L.opts.head }, token_similarity = true })
local head = L.opts.head
local states = m.n_layer + 1
local threshold = L.opts.alpha / states
local t, p, mean = {}, {}, {}
for l = 0, states - 1 do
  local d = r.token_similarity[0][0][l] - r.clean_token_similarity[l]   -- [pairs]
  mean[l + 1] = d:mean():item()
  if d:abs():max():item() == 0 then
    t[l + 1], p[l + 1] = 0, 1
  else
    local test = stats.ttest_1samp(d:unsqueeze(1), 0)
    t[l + 1], p[l + 1] = test.t[0]:item(), test.p[0]:item()
  end
end
report.figure(figure.line {
  x = tensor.arange(states), markers = true, series = { { y = t, label = "t (silenced − clean)" } },
  title = ("Change of the tokens' cosine similarities, head %d of layer %d silenced"):format(head, layer),
  xlabel = "hidden state (0 = embeddings)", ylabel = "t",
}, { name = "t_per_layer", caption = ("Bonferroni threshold p < %.2g (alpha / %d hidden states)."):format(threshold, states) })
local rows, significant, first = {}, 0, nil
for l = 0, states - 1 do
  local sig = p[l + 1] < threshold
  if sig then
    significant = significant + 1
    first = first or l
  end
  rows[#rows + 1] = { l, mean[l + 1], t[l + 1], p[l + 1], sig and "yes" or "no" }
end
report.table("Per hidden state", { columns = { "hidden state", "mean Δ cosine", "t", "p", "significant" }, rows = rows })
L:finding("the effect propagates and becomes significant in later layers", "significant in layers ~20–24 of 24",
  ("significant at %d of %d hidden states%s"):format(significant, states,
    first and (", from hidden state " .. first) or ""))
L:check(("nothing changes before block %d"):format(layer), math.abs(mean[layer + 1]) == 0 and t[layer + 1] == 0)
-- The same silencing as a Lua hook, at the last hidden state.
local _, out = m:forward(L.opts.prompt, { hidden_states = true, hooks = { [("blocks.%d.attn.hook_z"):format(layer)] =
  function(z) local o = z:clone(); o:select(2, head):zero_(); return o end } })
local lua_pairs = stats.upper_triangle(stats.cosine_matrix(out.hidden_states[m.n_layer][0]:double()))
local diff = (lua_pairs - r.token_similarity[0][0][m.n_layer]):abs():max():item()
L:check("the plugin's cosines equal the same silencing as a Lua hook (1e-6)", diff < 1e-6, lesson.fmt(diff))
L:finish()
