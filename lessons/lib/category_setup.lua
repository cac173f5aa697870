-- Lessons 12-15 and 12-16: the category sentences (lessons/data/category_sentences.txt), the
-- final token of every target word in them, and the MLP output of every layer at those tokens.
local category = {}

category.targets = { " toothpaste", " toothbrush", " floss", " mouthwash",
  " dishwasher", " nightstand", " bookshelf", " doorknob" }
category.names = { "dental hygiene", "household objects" }  -- targets 0-3 and 4-7

-- Every occurrence of every target in `sentences` (a Lua array): rows, positions and target
-- indices (0-based), as int64 tensors in (row, position) order.
function category.find(m, sentences)
  local found = {}
  for j, t in ipairs(category.targets) do
    local positions, rows = m:find_tokens(sentences, t)
    for k = 0, positions:numel() - 1 do
      found[#found + 1] = { rows[k]:item(), positions[k]:item(), j - 1 }
    end
  end
  table.sort(found, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  local r, p, v = {}, {}, {}
  for i, f in ipairs(found) do r[i], p[i], v[i] = f[1], f[2], f[3] end
  return tensor.new(r):long(), tensor.new(p):long(), tensor.new(v):long()
end

-- The site's activations of every layer at (rows[i], positions[i]): [occurrences, n_layer, units].
-- `site` has `{L}` where the layer goes (default the MLP output, the course's mlp.c_proj).
function category.gather(m, sentences, rows, positions, site)
  site = site or "blocks.{L}.hook_mlp_out"
  local _, cache = m:run_with_cache(sentences, { names = (site:gsub("{L}", "*")) })
  local per_layer = {}
  for l = 0, m.n_layer - 1 do
    local acts = cache[(site:gsub("{L}", tostring(l)))]                        -- [batch, pos, units]
    local flat = acts:reshape({ -1, acts:size(2) })
    per_layer[l + 1] = flat:index(0, rows * acts:size(1) + positions):float()  -- [occurrences, units]
  end
  return tensor.stack(per_layer, 1)
end

-- The 40 labelled sentences: { sentences, labels [40] int64 (0 dental, 1 household), rows,
-- positions, target [40] (0-7), acts [40, n_layer, units] }. Every sentence must hold exactly one
-- target, and sentences 0-19 targets of category 0.
function category.setup(L)
  local m = L.model
  local sentences = L:data_lines("category_sentences.txt")
  local rows, positions, target = category.find(m, sentences)
  if rows:numel() ~= #sentences or not rows:equal(tensor.arange(#sentences)) then
    error(("category_sentences.txt: expected exactly one target per sentence, found %d targets in %d sentences")
      :format(rows:numel(), #sentences), 0)
  end
  local labels = target:ge(4):long()
  return {
    sentences = sentences, rows = rows, positions = positions, target = target, labels = labels,
    acts = category.gather(m, sentences, rows, positions),
  }
end

return category
