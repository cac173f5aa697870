-- What the head-ablation lessons (16-01 to 16-03, and 15-02 for its target) share: the target and foil tokens as the model
-- reads them after the prompt (a word of several tokens is followed by its first), and the
-- percentage change of a probability from its clean value.
local lesson = require("lib.lesson")
local setup = {}

-- The first token of `word` as the continuation of a prompt (with GPT-2's leading space on a
-- causal BPE model), and a note for the report when the word takes more than one token.
function setup.token(m, word)
  local ids = m:tokenize(lesson.mid_sentence(m, word), { add_special_tokens = false })
  if ids:numel() == 0 then error(("the word %q has no tokens on this model"):format(word), 0) end
  local note
  if ids:numel() > 1 then
    note = ("%q takes %d tokens on this model; its first, %q, is the one scored."):format(word, ids:numel(),
      m:decode({ ids[0]:item() }))
  end
  return ids[0]:item(), note
end

-- 100 * (p - p_clean) / p_clean from log-probabilities (any shape) and the clean one (a number).
function setup.percent_change(logprobs, clean)
  return (logprobs - clean):exp():sub(1):mul(100)
end

-- The course's prompt has no [MASK]; on a masked model the word is predicted at an appended
-- [MASK]. Returns the text to run and the readout position (-1: the last token, or the mask).
function setup.prompt(m, text)
  if m.is_causal then return text, -1 end
  local ids = m:tokenize(text .. " [MASK] .", { special = true })
  local mask = m:tokenize("[MASK]", { special = true, add_special_tokens = false })
  local p = m:find_tokens(ids:unsqueeze(0), mask)
  return ids, p[0]:item()
end

-- The lesson's target and foil tokens (options target, foil) and its prompt with the readout
-- position (options prompt), the notes the report needs written. Returns target, foil, input, readout.
function setup.read(L, m)
  local target, note_t = setup.token(m, L.opts.target)
  local foil, note_f = setup.token(m, L.opts.foil)
  for _, note in ipairs({ note_t, note_f }) do if note then report.text(note) end end
  local input, readout = setup.prompt(m, L.opts.prompt)
  if not m.is_causal then
    report.text("This model is a masked LM: the answer is predicted at a [MASK] appended to the prompt.")
  end
  return target, foil, input, readout
end

return setup
