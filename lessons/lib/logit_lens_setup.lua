-- What the logit-lens lessons (13-15 to 13-17) share: the readout slot of a sentence with a
-- {target} word (the [MASK] on a masked model, the token before the word on a causal one), token
-- and the Lua cross-check of the plugin against m:unembed.
--
--   local setup = require("lib.logit_lens_setup")
--   local S = setup.slot(m, "The way you do anything is the {target} you do everything.", "way")
--   local res = plugin("logit_lens").lens(m, S.ids, { target = S.target_id })
--   res.target_z:select(1, S.position)   -- [layers]: the target's z-score at the slot
local lesson = require("lib.lesson")
local setup = {}

-- A table with
--   causal       m.is_causal
--   text         the sentence as the model reads it: the word filled in (causal), or [MASK] (masked)
--   ids          its token ids (1-D, framed as the model expects)
--   position     0-based position whose output predicts the word: the [MASK], or the token before
--                the word on a causal model (its next-token logits predict it)
--   target_id    the word's first token (GPT-2's BPE keeps the leading space, WordPiece does not)
--   target_text  that token's text
--   note         nil, or why the target is only the word's first token
function setup.slot(m, sentence, word)
  local start = sentence:find("{target}", 1, true)
  if not start then error("option --sentence must hold {target} where the target word goes", 0) end
  local s = { causal = m.is_causal }
  local before = sentence:sub(1, start - 1)
  local spaced = s.causal and before:match("%s$") ~= nil   -- the word keeps its space in a causal BPE
  local word_ids = m:tokenize(spaced and (" " .. word) or word, { add_special_tokens = false })
  if word_ids:numel() == 0 then error(("the target word %q has no tokens on this model"):format(word), 0) end
  s.target_id = word_ids[0]:item()
  s.target_text = lesson.token_label(m, s.target_id)
  if word_ids:numel() > 1 then
    s.note = ("The target %q takes %d tokens on this model; the lens follows its first, %s."):format(word,
      word_ids:numel(), s.target_text)
  end
  if s.causal then
    s.text = (sentence:gsub("{target}", function() return word end))
    s.ids = m:tokenize(s.text)
    -- The slot is where the prefix's tokens end: the word's first token follows them (BPE keeps
    -- the word's leading space with the word), which is checked rather than assumed.
    local prefix = m:tokenize((before:gsub("%s+$", "")))
    local at = prefix:numel()
    if at == 0 then error(("the target %q is the first token of %q; nothing before it predicts it"):format(word,
      s.text), 0) end
    if at >= s.ids:numel() or s.ids[at]:item() ~= s.target_id then
      error(("the sentence %q does not tokenise as its text before %q followed by the word"):format(s.text, word), 0)
    end
    s.position = at - 1
  else
    s.text = (sentence:gsub("{target}", "[MASK]"))
    s.ids = m:tokenize(s.text, { special = true })
    local mask = m:tokenize("[MASK]", { special = true, add_special_tokens = false })
    if mask:numel() ~= 1 then error("this masked model's tokenizer has no [MASK] token", 0) end
    s.position = m:find_tokens(s.ids:unsqueeze(0), mask)[0]:item()
  end
  return s
end

-- Writes what the report must say about the slot: a target longer than one token, and on a causal
-- model where the word's prediction is read.
function setup.report_slot(m, s)
  if s.note then report.text(s.note) end
  if s.causal then
    report.text(("This model is causal, so the sentence is read whole and the word's prediction is the output at " ..
      "position %d (%s), the token before it; its output head is the final norm then the unembedding."):format(
      s.position, lesson.token_label(m, s.ids[s.position]:item())))
  end
end

-- The largest difference between the plugin's result `res` at hidden state `layer` and the same
-- quantities computed in Lua from the hidden states through m:unembed: the top log-probabilities,
-- the KL from the output and, when the result has a target, its log-probability and z-score.
-- `layer` must be below n_layer (a causal model's last row is read from the last block instead).
function setup.lua_difference(m, res, layer)
  local output, out = m:forward(res.ids:unsqueeze(0), { hidden_states = true })
  local logits = m:unembed(out.hidden_states[layer][0], { full_head = res.full_head }):double()
  local lp = logits:log_softmax(-1)
  local final = output[0]:double():log_softmax(-1)
  local diffs = {
    (res.top_logprobs[layer] - lp:topk(res.top_logprobs:size(-1), -1)):abs():max():item(),
    (res.kl[layer] - (final:exp() * (final - lp)):sum(-1)):abs():max():item(),
  }
  if res.target then
    local index = res.target:unsqueeze(-1)
    local t = logits:gather(-1, index):squeeze(-1)
    diffs[#diffs + 1] = (res.target_logprob[layer] - lp:gather(-1, index):squeeze(-1)):abs():max():item()
    local z = (t - logits:mean(-1)) / logits:std(-1)
    diffs[#diffs + 1] = (res.target_z[layer] - z):abs():max():item()
  end
  return math.max(table.unpack(diffs))
end

return setup
