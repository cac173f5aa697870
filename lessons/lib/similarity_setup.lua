-- What the similarity lessons (13-01 to 13-05) share: sentences that each hold a target word and
-- the word's position in each (its last token, as the model reads it), the target's Q, K and V at
-- chosen layers from the `similarity` plugin, grouped-query K/V expanded to the query heads they
-- serve, pairwise similarities for histograms, and the dimension-shuffled control.
--
--   local setup = require("lib.similarity_setup")
--   local T = setup.targets(m, sentences, " her")           -- positions of the word in each
--   local qkv = setup.qkv(m, T, { 6 })                       -- qkv.q [layers, rows, units], ...
local lesson = require("lib.lesson")
local setup = {}

local sim = plugin("similarity")

-- { texts =, positions = [rows] int64 } for `sentences` (a Lua array) with `word` in each: the
-- position of the word's last token in its first occurrence (the token that has read the whole
-- word); a sentence without the word is an error naming it.
function setup.targets(m, sentences, word)
  local positions, rows = m:find_tokens(sentences, word)
  local first = {}
  for k = 0, positions:numel() - 1 do
    local r = rows[k]:item() + 1
    if not first[r] then first[r] = positions[k]:item() end
  end
  local out = {}
  for i, s in ipairs(sentences) do
    if not first[i] then error(("sentence %d does not contain %q: %q"):format(i, word, s), 0) end
    out[i] = first[i]
  end
  return { texts = sentences, positions = tensor.new(out):long(), word = word }
end

-- The word-category lessons' items (13-04, 13-05): the words and categories of a lessons/data
-- file (word <tab> category) each placed in `context` at {word}. Returns { words, names (the
-- categories in order of first appearance), labels [n] int64 (0-based category of each word),
-- texts, positions [n] (each word's last token) }.
function setup.word_groups(L, m, file, context)
  if not context:find("{word}", 1, true) then error("option --context must hold {word}", 0) end
  local words, groups = L:data_pairs(file)
  report.text(("Substitution: the course's 34 words are in its notebook; this run uses the %d words of " ..
    "`lessons/data/%s` (our own, in the course's three categories)."):format(#words, file))
  local names, index, labels = {}, {}, {}
  for i, g in ipairs(groups) do
    if not index[g] then
      names[#names + 1] = g
      index[g] = #names - 1
    end
    labels[i] = index[g]
  end
  local texts, positions = {}, {}
  for i, w in ipairs(words) do
    texts[i] = (context:gsub("{word}", function() return w end))
    local found = m:find_tokens({ texts[i] }, lesson.mid_sentence(m, w))
    if found:numel() == 0 then error(("the word %q is not found in %q"):format(w, texts[i]), 0) end
    positions[i] = found[found:numel() - 1]:item()
  end
  return { words = words, names = names, labels = tensor.new(labels):long(), texts = texts,
    positions = tensor.new(positions):long() }
end

-- The target's vectors at `layers` (a Lua array, 0-based): { q =, k =, v = } each [layers, rows,
-- units] float32, and { q_other = ... } with opts.others (every other real token, [layers, n,
-- units]) and `other_rows`. Under grouped-query attention K and V have fewer heads than Q; they
-- are expanded to the query heads they serve (each KV head repeated for its group, as attention
-- does) so that Q, K and V all have n_head x d_head units and can be compared.
function setup.qkv(m, T, layers, opts)
  opts = opts or {}
  local out = {}
  local q_heads
  for _, name in ipairs({ "q", "k", "v" }) do
    local r = sim.vectors(m, T.texts, { positions = T.positions, sites = "blocks.{L}.attn.hook_" .. name,
      layers = layers, others = opts.others, skip = opts.skip })
    local heads, d_head = r.shape[1], r.shape[2]
    q_heads = q_heads or heads
    local function expand(x)   -- [layers, n, heads * d_head] -> [layers, n, q_heads * d_head]
      if heads == q_heads then return x end
      local s = x:shape()
      return x:reshape({ s[1], s[2], heads, 1, d_head }):expand({ s[1], s[2], heads, q_heads // heads, d_head })
        :reshape({ s[1], s[2], q_heads * d_head })
    end
    out[name] = expand(r.vectors)
    if opts.others then
      out[name .. "_other"] = expand(r.other_vectors)
      out.other_rows, out.other_positions = r.other_rows, r.other_positions
    end
    if name == "q" then out.shape = r.shape end
  end
  return out
end

-- Pairwise similarities of the rows of a [n, d] with the rows of b [n, d] for a histogram: the
-- entries above the diagonal when a and b are the same set (QQ), else every pair i ~= j (QK:
-- sentence i's Q against sentence j's K). `kind`: "cosine" or "correlation".
function setup.pairs(a, b, kind, same)
  -- In float64, clamped: a float32 cosine of near-parallel vectors can round past 1 and fall
  -- outside a histogram's last edge.
  local s = kind == "correlation" and stats.correlation_matrix(a, b) or
    stats.cosine_matrix(a:double(), b:double()):clamp(-1, 1)
  if same then return stats.upper_triangle(s) end
  local n = s:size(0)
  local off = tensor.eye(n):eq(0)
  return s:masked_select(off)
end

-- Each row of x [n, d] with its d values in a random order of its own (seeded): the control that
-- keeps every vector's values and destroys which dimension holds which.
function setup.shuffle_dims(x, seed)
  local _, order = tensor.rand(x:shape(), { seed = seed }):sort(1)
  return x:gather(1, order)
end

-- One vector per sentence among the other tokens (a random one, seeded): a set of non-target
-- vectors the same size as the target's, so their histograms compare like with like.
function setup.one_other_per_row(other, other_rows, n_rows, seed)
  local pick, r = {}, tensor.rand({ other_rows:numel() }, { seed = seed })
  local best = {}
  for k = 0, other_rows:numel() - 1 do
    local row = other_rows[k]:item()
    if not best[row] or r[k]:item() > best[row][1] then best[row] = { r[k]:item(), k } end
  end
  for row = 0, n_rows - 1 do
    if best[row] then pick[#pick + 1] = best[row][2] end
  end
  return other:index(-2, tensor.new(pick):long())
end

-- The mean of the entries of a 1-D tensor as a number.
function setup.mean(x) return x:double():mean():item() end

return setup
