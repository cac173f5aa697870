-- lesson: 12-14 Dealing with multitoken word embeddings
-- Words of several tokens: find each word's last token (m:find_tokens), and measure how much the
-- hidden state changes from layer to layer there, at the token before it, and between the two.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "12-14",
  title = "Dealing with multitoken word embeddings",
  course = "part5_neurons_multitokenWords (video 198), GPT-2 small, hidden states of every layer",
  options = {
    frame = "I'd like to read a story about that famous ",  -- the course's frame, trailing space included
  },
  summary = "The six targets of the course (`' toothpaste'`, `'toothpaste'`, `'time machine'`, `' time machine'`, " ..
    "`'time-machine'`, `' time-machine'`) each end one sentence, the course's frame (which ends in a space) followed " ..
    "by the target, so a target with a leading space follows two spaces, as in the course. The six sentences run as " ..
    "one right-padded batch with its attention mask. `m:find_tokens(batch, target)` returns the position of the " ..
    "last token of every occurrence of a target: in a causal model only that token has read the whole word.",
}
local m = L.model
local targets = { " toothpaste", "toothpaste", "time machine", " time machine", "time-machine", " time-machine" }
local sentences = {}
for i, t in ipairs(targets) do sentences[i] = L.opts.frame .. t end

-- 1. Where each target ends --------------------------------------------------------------------
local _, out = m:forward(sentences, { hidden_states = true })
-- Every occurrence of every target in the batch, by row: the course checks all six targets against
-- every sentence, since a target written without its space may be tokenised differently inside one.
local hits = {}
for j, t in ipairs(targets) do
  local positions, in_rows = m:find_tokens(sentences, t)
  for k = 0, positions:numel() - 1 do
    local row = in_rows[k]:item() + 1
    hits[row] = hits[row] or {}
    hits[row][#hits[row] + 1] = { target = j, pos = positions[k]:item() }
  end
end
local final, matched, rows = {}, {}, {}
for i, t in ipairs(targets) do
  local own, any = nil, nil
  for _, h in ipairs(hits[i] or {}) do
    if h.target == i then own = h end
    any = h
  end
  local use = own or any
  if not use then error(("lesson 12-14: no target found in sentence %d (%q)"):format(i - 1, sentences[i]), 0) end
  final[i], matched[i] = use.pos, use.target
  local names = {}
  for _, h in ipairs(hits[i]) do names[#names + 1] = ("%q@%d"):format(targets[h.target], h.pos) end
  local sentence_tokens = m:tokens(sentences[i])
  rows[#rows + 1] = { i - 1, ("%q"):format(t), lesson.word_ids(m, t):numel(), table.concat(sentence_tokens, "|"),
    table.concat(names, " "), final[i], ("%q"):format(sentence_tokens[final[i] + 1]) }
end
local borrowed = 0
for i = 1, #targets do if matched[i] ~= i then borrowed = borrowed + 1 end end
report.text(("## 1. The targets' final tokens\n\nEach sentence's tokens (separated by `|`), every target found in " ..
  "it with the position of its last token (0-based), and the position used. %d of the 6 sentences do not contain " ..
  "their own target's tokens — the target tokenises differently alone than after the frame — and are found only " ..
  "through another target of the list, which is why the course checks every target against every sentence."):format(borrowed))
report.table("Final tokens", { columns = { "sentence", "target", "target tokens", "sentence tokens", "targets found",
  "final position", "final token" }, rows = rows })

-- 2. Hidden-state changes at the final token ----------------------------------------------------
local n_layer = m.n_layer
local d_final, d_before, d_token = {}, {}, {}
for l = 1, n_layer do
  local sum_f, sum_b, sum_t = 0, 0, 0
  for i = 1, #targets do
    local f = final[i]
    local h, prev = out.hidden_states[l][i - 1], out.hidden_states[l - 1][i - 1]    -- [pos, d_model]
    sum_f = sum_f + (h[f] - prev[f]):norm():item()
    sum_b = sum_b + (h[f - 1] - prev[f - 1]):norm():item()
    sum_t = sum_t + (h[f] - h[f - 1]):norm():item()
  end
  d_final[l], d_before[l], d_token[l] = sum_f / #targets, sum_b / #targets, sum_t / #targets
end
local layers = tensor.arange(1, n_layer + 1)
report.text("## 2. How much the hidden state changes\n\nFor each layer step l (hidden_states[l] − hidden_states[l−1]) " ..
  "the norm of the change at the final token and at the token before it, and within the layer the norm of the " ..
  "difference between the two tokens, each averaged over the six sentences.")
report.figure(figure.line {
  x = layers, markers = true,
  series = {
    { y = d_final, label = "final token: layer l - layer l-1" },
    { y = d_before, label = "second-last token: layer l - layer l-1" },
    { y = d_token, label = "within layer: final - second-last token" },
  },
  title = "Mean norm of hidden-state differences", xlabel = "hidden_states index l", ylabel = "mean ||difference||",
}, { name = "diff_norms", caption = "Means over the six sentences; hidden_states[0] is the embeddings and the last " ..
  "index is after the final LayerNorm, so its step mixes the last block with the normalisation." })
local peak_f, peak_l = -1, 0
for l = 1, n_layer do if d_final[l] > peak_f then peak_f, peak_l = d_final[l], l end end
local larger = 0
for l = 1, n_layer do if d_final[l] > d_before[l] then larger = larger + 1 end end
report.text(("The final token's layer-to-layer change is larger than the second-last token's in %d of %d steps, and " ..
  "largest at hidden_states[%d] (%s)."):format(larger, n_layer, peak_l, lesson.fmt(peak_f)))
report.tensor("diff_norms", tensor.stack({ tensor.new(d_final), tensor.new(d_before), tensor.new(d_token) }),
  { caption = "[3, n_layer]: final-token, second-last-token and within-layer norms for l = 1..n_layer" })

-- 3. The overwrite pitfall ------------------------------------------------------------------------
-- The course's loop keeps one `targetloc` per sentence and overwrites it with every later match.
local repeated = L.opts.frame .. "time machine, and the time machine's inventor"
local ids = m:tokenize(repeated)
local target_ids = lesson.word_ids(m, " time machine"):tolist()
local course_loc
local list = ids:tolist()
for ti = #target_ids, #list do
  local match = true
  for k = 1, #target_ids do
    if list[ti - #target_ids + k] ~= target_ids[k] then match = false break end
  end
  if match then course_loc = ti - 1 end
end
local every = m:find_tokens(ids, target_ids)
report.text(("## 3. The overwrite pitfall\n\nIn `%s` the target ` time machine` occurs %d times. The course's loop " ..
  "keeps a single `targetloc` and overwrites it at each match, so it ends at position %s, the last occurrence " ..
  "only; `find_tokens` returns every occurrence's last token: %s. A loop over several targets per sentence has the " ..
  "same problem: a later target that also matches overwrites the earlier one's position.")
  :format(repeated, every:numel(), tostring(course_loc), table.concat(every:tolist(), ", ")))

-- Checks and findings -------------------------------------------------------------------------------
local ok_final, detail = true, {}
for i = 1, #targets do
  -- Every target ends its sentence, so the final token is the sentence's last token, and the
  -- matched target's span decodes back to that target.
  local sentence_ids = m:tokenize(sentences[i])
  local n_target = lesson.word_ids(m, targets[matched[i]]):numel()
  local span = m:decode(sentence_ids:narrow(0, final[i] - n_target + 1, n_target))
  if final[i] ~= sentence_ids:numel() - 1 or span ~= targets[matched[i]] then ok_final = false end
  detail[#detail + 1] = final[i] .. "/" .. (sentence_ids:numel() - 1)
end
L:check("every target's final-token index is its sentence's last token", ok_final, table.concat(detail, ", "))
L:check("find_tokens keeps every occurrence; the course's loop only the last", every:numel() >= 2 and
  every[-1]:item() == course_loc and every[0]:item() < course_loc)
L:finding("which token to use for a multi-token word", "the last: it integrates the earlier tokens",
  "find_tokens returns the last token of every occurrence")
L:finding("final token's per-layer change", "larger in the middle layers (qualitative)",
  ("largest at hidden_states[%d] of %d; above the second-last token's in %d of %d steps"):format(peak_l, n_layer,
    larger, n_layer))
L:finish()
