-- lesson: 16-05 CC: does GPT2 like pineapple pizza?
-- Silence one head at one token, for every layer and head: does the final representation of
-- " pizza" move towards " pineapple" or " butter"?
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "16-05",
  title = "CC: does GPT2 like pineapple pizza?",
  course = "part6_attention_CCpineapplePizza (video 262), GPT-2 large (36 layers × 20 heads)",
  options = {
    prompt = "Peanut butter and pineapple taste great on pizza",
    target = "pizza",
    pair = "butter,pineapple",   -- the two words compared with the target
  },
  summary = "The `heads` plugin silences (zeroes at `blocks.L.attn.hook_z`) one head at the target token only, " ..
    "every layer × head in its own row of batched passes, and returns the cosine similarity of the target's " ..
    "final hidden state with each compared word's (`compare`). Changes are relative to the unedited sentence.",
}
local m = L.model
local heads = plugin("heads")
local ids = m:tokenize(L.opts.prompt)
local function last_position(word)
  local found = m:find_tokens(ids:unsqueeze(0), lesson.mid_sentence(m, word))
  if found:numel() == 0 then error(("%q is not in the prompt %q"):format(word, L.opts.prompt), 0) end
  return found[found:numel() - 1]:item()
end
local words = {}
for w in tostring(L.opts.pair):gmatch("[^,]+") do words[#words + 1] = w end
if #words ~= 2 then error("option --pair: two words separated by a comma, e.g. butter,pineapple", 0) end
local target = last_position(L.opts.target)
local compare = { last_position(words[1]), last_position(words[2]) }
local r = heads.ablate(m, ids, { positions = { target }, position = target, compare = compare, targets = { ids[0]:item() } })
local change = r.similarity - r.clean_similarity:view({ 1, 1, 2 })         -- [layers, heads, 2]
for k, w in ipairs(words) do
  report.figure(figure.heatmap {
    values = change:select(2, k - 1), palette = "diverging",
    title = ("Δ cos(%s, %s) when one head is silenced at %q"):format(L.opts.target, w, L.opts.target),
    xlabel = "head", ylabel = "layer", colorbar_label = "Δ cosine",
  }, { name = "delta_" .. w, caption = ("Clean cos(%s, %s) = %.3f."):format(L.opts.target, w, r.clean_similarity[k - 1]:item()) })
end
local preference = change:select(2, 1) - change:select(2, 0)   -- towards the second word
report.figure(figure.histogram {
  series = { { values = preference, label = "Δcos(second) − Δcos(first)" } }, bins = 30,
  title = ("Does silencing a head move %q towards %q or %q?"):format(L.opts.target, words[2], words[1]),
  xlabel = "shift towards " .. words[2], ylabel = "heads",
}, { name = "preference", caption = "One value per silenced head." })
local largest = change:abs():max():item()
L:finding("silencing a single head at a single token barely shifts the association", "barely",
  ("clean cos with %s %s and with %s %s; the largest change over %d heads is %s"):format(words[1],
    lesson.fmt(r.clean_similarity[0]:item()), words[2], lesson.fmt(r.clean_similarity[1]:item()), preference:numel(),
    lesson.fmt(largest)))
-- Check: one silencing written as a Lua hook.
local l, h = 0, 0
local _, out = m:forward(ids:unsqueeze(0), { hidden_states = true, hooks = { ["blocks.0.attn.hook_z"] = function(z)
  local o = z:clone(); o[0][target][h]:zero_(); return o end } })
local last = out.hidden_states[m.n_layer][0]:double()
local a, b = last[target], last[compare[2]]
local cos = (a * b):sum():item() / (a:norm():item() * b:norm():item())
L:check("the plugin's similarity equals the same silencing as a Lua hook (1e-6)",
  math.abs(cos - r.similarity[l][h][1]:item()) < 1e-6, ("%s vs %s"):format(lesson.fmt(cos, 7), lesson.fmt(r.similarity[l][h][1]:item(), 7)))
L:finish()
