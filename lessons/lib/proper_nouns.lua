-- Lesson 12-19: Brown corpus text with each token's part-of-speech tag, and the course's
-- proper-noun rule applied to tokens.
local proper = {}

-- The plain text of `documents` (Brown ids), one sentence after another, at least `min_chars`
-- long (or all of it), and for every character the 1-based index of the Brown word it belongs
-- to (0 for spaces) with each word's tag. Words are found in the detokenised sentence in order;
-- quote marks that detokenising rewrites are looked up as written (`` and '' become ").
function proper.tagged_text(brown, documents, min_chars)
  local parts, owner, tags, length = {}, {}, {}, 0
  for _, sentence in ipairs(brown:tagged_sentences({ document = documents })) do
    local words = {}
    for i, pair in ipairs(sentence) do words[i] = pair[1] end
    local s = corpus.detokenize(words)
    local prefix = length > 0 and 1 or 0                     -- the space joining sentences
    local cursor = 1
    for _, pair in ipairs(sentence) do
      local w = (pair[1] == "``" or pair[1] == "''") and '"' or pair[1]
      local first, last = s:find(w, cursor, true)
      if first then
        tags[#tags + 1] = pair[2]
        for k = first, last do owner[length + prefix + k] = #tags end
        cursor = last + 1
      end
    end
    if prefix == 1 then parts[#parts + 1] = " " end
    parts[#parts + 1] = s
    length = length + prefix + #s
    if length >= min_chars then break end
  end
  return table.concat(parts), owner, tags
end

-- Proper nouns by Brown's tags: np, nps, np$, nps$ and their -tl/-hl forms.
function proper.is_np(tag)
  return tag ~= nil and (tag:match("^nps?%$?$") or tag:match("^nps?%$?%-")) ~= nil
end

-- For every token of `tokens` (strings whose concatenation is the text): the course's rule
-- (token ti >= 1 is a proper noun when its text is longer than 2 characters, its stripped text
-- starts with a capital, and the previous token does not end in . ! ? or :), and Brown's tags
-- (the token starts a word tagged as a proper noun). Two Lua arrays of booleans.
function proper.label(tokens, owner, tags)
  local rule, tagged, offset = {}, {}, 0
  for i, tok in ipairs(tokens) do
    local stripped = tok:match("^%s*(.-)%s*$")
    local prev = tokens[i - 1]
    rule[i] = i >= 2 and #tok > 2 and stripped:match("^%u") ~= nil and not prev:match("[%.!%?:]$")
    local lead = #tok - #(tok:gsub("^%s+", ""))
    local at = offset + lead + 1                          -- the token's first visible character
    local word = owner[at]
    tagged[i] = word ~= nil and owner[at - 1] ~= word and proper.is_np(tags[word])
    offset = offset + #tok
  end
  return rule, tagged
end

return proper
