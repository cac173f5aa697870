-- What the mutual-information lessons on token vectors share (13-11 to 13-14): a text cut into rows
-- the model takes, the occurrences of a token in it with their positions in the whole text, the
-- vectors at those occurrences from the `similarity` plugin, and the MI between every pair of
-- vectors (each vector's dimensions are the samples) after the course's extreme-value clipping.
local setup = {}

-- ids [n] (1-D) cut into right-padded rows of at most `seq_len` tokens: { ids =, mask = } (the
-- input of m:forward and the plugins), and the rows' width.
function setup.rows(ids, seq_len)
  local n = ids:numel()
  local count = (n + seq_len - 1) // seq_len
  local width = math.min(seq_len, n)
  local rows, mask = tensor.zeros({ count, width }):long(), tensor.zeros({ count, width }):long()
  for r = 0, count - 1 do
    local len = math.min(seq_len, n - r * seq_len)
    rows[r]:narrow(0, 0, len):copy(ids:narrow(0, r * seq_len, len))
    mask[r]:narrow(0, 0, len):fill(1)
  end
  return { ids = rows, mask = mask }, width
end

-- The vectors of `sites` (a list of hook points) at every occurrence of `word` in `rows` (of
-- `width` tokens, from setup.rows): { vectors [sites, n, units], positions [n] (in the whole
-- text), n }. A word of several tokens is read at its last token.
function setup.occurrence_vectors(m, rows, width, word, sites)
  local positions, row_of = m:find_tokens(rows, word)
  if positions:numel() < 3 then
    error(("%q occurs %d times in the text; the lesson needs at least 3"):format(word, positions:numel()), 0)
  end
  local r = plugin("similarity").vectors(m, rows, { occurrences = { rows = row_of, positions = positions },
    sites = sites })
  return { vectors = r.vectors, positions = row_of * width + positions, n = positions:numel() }
end

-- Each vector [n, d] z-scored over its own dimensions and clipped at ±threshold (the course's
-- extreme-value threshold): a few outlier dimensions would otherwise stretch every histogram's
-- range and squeeze the rest into one or two bins. Returns the clipped values and how many were cut.
function setup.clip(x, threshold)
  local z = x:double()
  z = (z - z:mean(1, true)) / z:std(1, true)
  local cut = z:abs():gt(threshold):sum():item()
  return z:clamp(-threshold, threshold), cut
end

-- The pairwise measures between the n vectors of x [n, d] and their distances in tokens:
-- { mi, cov } [n, n] (MI in bits, the dimensions as samples; covariance of the clipped values),
-- and the upper triangles with the distances, and Kendall's tau of each against distance.
function setup.pairwise(x, positions, bins, threshold)
  local z, cut = setup.clip(x, threshold)
  local mi = stats.mi_matrix(z:t():contiguous(), { bins = bins })
  local cov = setup.covariance(z)
  local p = positions:double()
  local distance = (p:unsqueeze(1) - p:unsqueeze(0)):abs()
  local d, u_mi, u_cov = stats.upper_triangle(distance), stats.upper_triangle(mi), stats.upper_triangle(cov)
  return { mi = mi, cov = cov, cut = cut, distance = d, mi_pairs = u_mi, cov_pairs = u_cov,
    mi_tau = stats.kendall(u_mi, d), cov_tau = stats.kendall(u_cov, d) }
end

-- Up to `count` windows of `before` tokens, the token `id`, and `after` tokens, around occurrences of
-- `id` in ids [n] (1-D), chosen at random (seeded) among those with room on both sides: [windows,
-- before + 1 + after] int64, the token at column `before`; and how many occurrences there were.
function setup.windows(ids, id, before, after, count, seed)
  local n = ids:numel()
  local hits = ids:eq(id):nonzero():flatten()
  local fits = hits:masked_select((hits:ge(before):long() + hits:lt(n - after):long()):eq(2))
  local total = fits:numel()
  if total == 0 then return nil, hits:numel() end
  local _, order = tensor.rand({ total }, { seed = seed }):sort(0)
  local chosen = (fits:index(0, order:narrow(0, 0, math.min(count, total))):sort(0))
  local width = before + 1 + after
  local offsets = tensor.arange(width):long():unsqueeze(0) - before
  return ids:index(0, (chosen:unsqueeze(1) + offsets):flatten()):reshape({ chosen:numel(), width }), hits:numel()
end

-- The first two principal components of the rows of a similarity matrix s [n, n] (each item
-- described by its similarities to all items): [n, 2], for a scatter that shows the clusters.
function setup.embed2(s)
  local p = stats.pca(s:double(), { k = 2 })
  return (s:double() - p.mean):matmul(p.components:t())
end

-- Lessons 13-13 and 13-14: windows around commas and periods of the lesson's text (options
-- windows, before, after, seed), and every hidden state at the mark from the `similarity` plugin.
-- Returns { all [n, width] ids, labels [n] (0 comma, 1 period), counts (marks in the text),
-- windows (per mark), vectors [hidden states, n, d], n, tokens (the text's length) }.
function setup.punctuation(L, m, ids)
  local rows, labels, counts = {}, {}, {}
  for k, mark in ipairs({ ",", "." }) do
    local id = m:tokenize(mark, { add_special_tokens = false })
    if id:numel() ~= 1 then error(("%q is not one token on this model"):format(mark), 0) end
    local w, total = setup.windows(ids, id[0]:item(), L.opts.before, L.opts.after, L.opts.windows, L.opts.seed + k)
    if not w or w:size(0) < 3 then
      error(("too few %q with room for the windows (%d in the text)"):format(mark, total), 0)
    end
    rows[k], counts[k] = w, total
    for _ = 1, w:size(0) do labels[#labels + 1] = k - 1 end
  end
  local all = tensor.cat(rows, 0)
  local positions = {}
  for i = 1, all:size(0) do positions[i] = L.opts.before end
  local r = plugin("similarity").vectors(m, all, { positions = positions })
  return { all = all, labels = tensor.new(labels):long(), counts = counts, windows = { rows[1]:size(0), rows[2]:size(0) },
    vectors = r.vectors, n = all:size(0), tokens = ids:numel() }
end

-- How far apart two labelled groups (labels 0 and 1) lie along the first principal component of
-- a similarity matrix's rows, in pooled standard deviations (Cohen's d); infinite when each group
-- is one point (no spread but rounding).
function setup.separation(s, labels)
  local e = setup.embed2(s)
  local a, b = e:select(1, 0):masked_select(labels:eq(0)), e:select(1, 0):masked_select(labels:eq(1))
  local pooled = math.sqrt(((a:numel() - 1) * a:var():item() + (b:numel() - 1) * b:var():item()) /
    (a:numel() + b:numel() - 2))
  local gap = math.abs(a:mean():item() - b:mean():item())
  return pooled > 1e-9 * gap and gap / pooled or math.huge
end

-- The covariance between the rows of x [n, d] (each vector's dimensions as paired samples): [n, n].
function setup.covariance(x)
  local centred = x:double() - x:double():mean(1, true)
  return centred:matmul(centred:t()) / (x:size(1) - 1)
end

return setup
