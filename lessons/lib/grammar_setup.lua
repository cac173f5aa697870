-- Lessons 12-08 and 12-09: the noun and verb lists derived from the Brown corpus' own
-- part-of-speech tags, and each word's MLP pre-activations run alone (mean over its tokens).
local lesson = require("lib.lesson")
local grammar = {}

-- Every lower-cased word under a tag pattern, most frequent first, with its counts and a
-- word -> count map; and a word -> count map of the words as written (case kept).
local function counts_by_word(pattern)
  local words, counts = corpus.words_with_tag(pattern, { lower = true })
  local map, written = {}, {}
  for i, w in ipairs(words) do map[w] = counts[i] end
  local exact, exact_counts = corpus.words_with_tag(pattern)
  for i, w in ipairs(exact) do written[w] = exact_counts[i] end
  return words, counts, map, written
end

-- The `n` most frequent nouns (tag nn) and base-form verbs (tag vb) of the Brown corpus. A word
-- tagged both ways goes to the list of the tag it carries more often, so the lists are disjoint.
-- Words are alphabetic, 2+ letters, and written in lower case at least half the time under the
-- tag (which drops symbols such as the 974 "Af" of the technical texts).
-- Returns nouns, verbs (Lua arrays, most frequent first) and a table of the counts shown.
function grammar.word_lists(n)
  local nn_words, nn_counts, nn, nn_written = counts_by_word("nn")
  local vb_words, vb_counts, vb, vb_written = counts_by_word("vb")
  local function pick(words, counts, written, other)
    local list, rows = {}, {}
    for i, w in ipairs(words) do
      if #list == n then break end
      if #w >= 2 and w:match("^%a+$") and counts[i] > (other[w] or 0) and 2 * (written[w] or 0) >= counts[i] then
        list[#list + 1] = w
        rows[#rows + 1] = { w, counts[i], other[w] or 0 }
      end
    end
    return list, rows
  end
  local nouns, noun_rows = pick(nn_words, nn_counts, nn_written, vb)
  local verbs, verb_rows = pick(vb_words, vb_counts, vb_written, nn)
  if #nouns < n or #verbs < n then
    error(("grammar lists: the corpus has only %d nouns and %d verbs to choose from, %d wanted"):format(#nouns, #verbs, n), 0)
  end
  return nouns, verbs, { nouns = noun_rows, verbs = verb_rows }
end

-- Each word run alone (no leading space; a right-padded batch with its attention mask), the
-- site's activations averaged over the word's own tokens (after a BOS where the model adds
-- one): [words, units] float32, the number of tokens of each word, and where they start.
function grammar.word_means(m, words, site, layer)
  local counts, starts = {}, {}
  for i, w in ipairs(words) do
    local own = lesson.word_ids(m, w)
    counts[i] = own:numel()
    starts[i] = m:find_tokens(w, own)[0]:item() - counts[i] + 1
  end
  local n_tokens, first = tensor.new(counts), tensor.new(starts)               -- [words] int64
  local _, cache = m:run_with_cache(words, { names = site, stop_at_layer = layer + 1 })
  local acts = cache[site]:float()                                             -- [words, pos, units]
  local pos = tensor.arange(acts:size(1)):unsqueeze(0)
  local mask = pos:ge(first:unsqueeze(1)):float() * pos:lt((first + n_tokens):unsqueeze(1)):float()
  return (acts * mask:unsqueeze(2)):sum(1) / n_tokens:float():unsqueeze(1), n_tokens, first
end

-- The lists and activations both lessons use: { nouns, verbs, rows, layer, site, acts } with
-- acts [2, n, units] (index 0 = verbs, 1 = nouns, as the course's all_activations).
function grammar.setup(L)
  local m, o = L.model, L.opts
  local layer = o.layer >= 0 and math.min(o.layer, m.n_layer - 1) or L:layer(8, 12)
  local site = "blocks." .. layer .. ".mlp.hook_pre"
  local nouns, verbs, rows = grammar.word_lists(o.n_words)
  local verb_acts = grammar.word_means(m, verbs, site, layer)
  local noun_acts, noun_tokens, noun_starts = grammar.word_means(m, nouns, site, layer)
  return {
    nouns = nouns, verbs = verbs, rows = rows, layer = layer, site = site,
    acts = tensor.stack({ verb_acts, noun_acts }), noun_tokens = noun_tokens, noun_starts = noun_starts,
  }
end

-- The setup's word lists as one report table.
function grammar.report_lists(g)
  local rows = {}
  for i = 1, #g.nouns do
    rows[i] = { i - 1, g.rows.nouns[i][1], g.rows.nouns[i][2], g.rows.nouns[i][3],
      g.rows.verbs[i][1], g.rows.verbs[i][2], g.rows.verbs[i][3] }
  end
  report.table("Word lists", { columns = { "rank", "noun", "as noun (nn)", "as verb (vb)", "verb", "as verb (vb)",
    "as noun (nn)" }, rows = rows })
end

return grammar
