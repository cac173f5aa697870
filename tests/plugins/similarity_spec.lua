-- The similarity plugin against the Lua DSL on the same activations: each row run alone through
-- run_with_cache (or forward{hidden_states = true}) gives, at the target position, the plugin's
-- vectors; the other tokens come in reading order without the target and the skipped positions;
-- batching and padding change nothing beyond float32 rounding; bad options are errors. On the
-- random GPT-2 with its tokenizer and on the Pythia and Llama fixtures (ids; grouped-query K).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2 = arg[1], arg[2]
local sim = plugin("similarity")

local function max_diff(a, b) return (a:float() - b:float()):abs():max():item() end

-- rows: a Lua list of 1-D id tensors; positions: a Lua list (0-based). The vectors of `sites` (a
-- list of hook points, or nil for the hidden states) at each row's position, each row run alone:
-- [sites, rows, units], and the other tokens' [sites, n, units] with their rows and positions.
local function reference(m, rows, positions, sites, skip)
  local picked, others, other_rows, other_positions = {}, {}, {}, {}
  for r, row in ipairs(rows) do
    for i, st in ipairs(spec.row_states(m, row, sites)) do
      picked[i] = picked[i] or {}
      others[i] = others[i] or {}
      table.insert(picked[i], st[positions[r]])
      for p = skip, row:numel() - 1 do
        if p ~= positions[r] then
          table.insert(others[i], st[p])
          if i == 1 then
            other_rows[#other_rows + 1] = r - 1
            other_positions[#other_positions + 1] = p
          end
        end
      end
    end
  end
  local v, o = {}, {}
  for i = 1, #picked do
    v[i] = tensor.stack(picked[i])
    o[i] = tensor.stack(others[i])
  end
  return tensor.stack(v), tensor.stack(o), tensor.new(other_rows):long(), tensor.new(other_positions):long()
end

spec.describe("similarity.vectors on the random GPT-2", function()
  local m = model.load(random_gpt2)
  local texts = { "She gave her the book.", "I saw her yesterday at noon, near the station.", "We told her." }
  local rows = {}
  for i, t in ipairs(texts) do rows[i] = m:tokenize(t) end

  spec.it("gathers the target of every row at every site; the others in reading order", function()
    local sites = { "blocks.1.attn.hook_q", "blocks.4.attn.hook_k", "blocks.7.hook_resid_post" }
    local r = sim.vectors(m, texts, { target = " her", sites = { "blocks.1.attn.hook_q", "blocks.4.attn.hook_k",
      "blocks.7.hook_resid_post" }, others = true, batch_size = 2 })
    local positions = {}
    for i = 1, #texts do positions[i] = r.positions[i - 1]:item() end
    spec.same(positions, { 2, 2, 2 })
    local v, o, o_rows, o_pos = reference(m, rows, positions, sites, 0)
    spec.truthy(max_diff(r.vectors, v) < 1e-5, "vectors: " .. max_diff(r.vectors, v))
    spec.truthy(max_diff(r.other_vectors, o) < 1e-5, "other vectors")
    spec.truthy(r.other_rows:equal(o_rows) and r.other_positions:equal(o_pos), "others in reading order")
    spec.eq(r.ids[0]:item(), m:tokenize(" her")[0]:item())
    local other_ids = {}
    for k = 0, o_rows:numel() - 1 do other_ids[k + 1] = rows[o_rows[k]:item() + 1][o_pos[k]:item()]:item() end
    spec.truthy(r.other_ids:equal(tensor.new(other_ids):long()), "other ids")
    local _, cache = m:run_with_cache(rows[1]:unsqueeze(0), { names = sites[1] })
    local q_shape = cache[sites[1]]:shape()
    spec.same(r.shape, { q_shape[3], q_shape[4] })
    spec.eq(r.units, m.d_model)
    spec.same(r.sites, sites)
  end)

  spec.it("equals run_with_cache of the same padded batch to 1e-6", function()
    local site = "blocks.5.attn.hook_v"
    local r = sim.vectors(m, texts, { target = " her", sites = site })
    local _, cache = m:run_with_cache(texts, { names = site })
    local acts = cache[site]:flatten(2)                     -- [rows, pos, units]
    for i = 0, #texts - 1 do
      spec.truthy(max_diff(r.vectors[0][i], acts[i][r.positions[i]:item()]) < 1e-6, "row " .. i)
    end
  end)

  spec.it("defaults to the hidden states; positions count from each row's end", function()
    local r = sim.vectors(m, texts, { positions = { -1, 3, -2 } })
    local v = reference(m, rows, { rows[1]:numel() - 1, 3, rows[3]:numel() - 2 }, nil, 0)
    spec.same(r.vectors:shape(), { m.n_layer + 1, 3, m.d_model })
    spec.truthy(max_diff(r.vectors, v) < 1e-5, "hidden states")
    spec.eq(r.sites[1], "hidden_states.0")
    spec.eq(r.positions[0]:item(), rows[1]:numel() - 1)
  end)

  spec.it("reads any number of occurrences per row, as m:find_tokens returns them", function()
    local text = "The coffee was hot. Coffee again: more coffee, and then coffee."
    local positions, rows_found = m:find_tokens({ text, text }, " coffee")
    local r = sim.vectors(m, { text, text }, { occurrences = { rows = rows_found, positions = positions },
      sites = "blocks.3.hook_mlp_out", others = true })
    spec.eq(r.vectors:size(1), positions:numel())
    spec.truthy(r.rows:equal(rows_found) and r.positions:equal(positions))
    local row = m:tokenize(text)
    local st = spec.row_states(m, row, { "blocks.3.hook_mlp_out" })[1]
    -- Both rows hold the same text, so each occurrence's vector is the lone row's at its position.
    spec.truthy(max_diff(r.vectors[0], st:index(0, positions)) < 1e-5, "the vectors at every occurrence")
    -- The others leave out every occurrence.
    spec.eq(r.other_positions:numel(), 2 * row:numel() - positions:numel())
    for k = 0, r.ids:numel() - 1 do spec.eq(r.ids[k]:item(), m:tokenize(" coffee")[0]:item()) end
  end)

  spec.it("a {L} template over layers; skip leaves positions out of the others and the search", function()
    local text = " her and her"
    spec.same(m:tokens(text), { " her", " and", " her" })
    local r = sim.vectors(m, { text }, { target = " her", skip = 1, others = true,
      sites = "blocks.{L}.attn.hook_v", layers = { 0, -1 } })
    spec.same(r.sites, { "blocks.0.attn.hook_v", "blocks.11.attn.hook_v" })
    spec.eq(r.positions[0]:item(), 2, "the first occurrence at or after skip")
    spec.same(r.other_positions:shape(), { 1 })
    spec.eq(r.other_positions[0]:item(), 1, "position 0 skipped, 2 is the target")
  end)

  spec.it("refuses what it cannot do, naming the argument", function()
    local one_of = "give one of option 'target', 'positions' (one per row) or 'occurrences'"
    spec.raises(function() sim.vectors(m, texts, { sites = "blocks.0.attn.hook_q" }) end, one_of)
    spec.raises(function() sim.vectors(m, texts, { target = " her", positions = { 1, 1, 1 } }) end, one_of)
    spec.raises(function() sim.vectors(m, texts, { occurrences = { rows = { 0, 1 }, positions = { 1 } } }) end,
      "option 'occurrences': 2 rows and 1 positions")
    spec.raises(function() sim.vectors(m, texts, { occurrences = { rows = { 1, 0 }, positions = { 1, 1 } } }) end,
      "option 'occurrences': not in reading order at entry 2")
    spec.raises(function() sim.vectors(m, texts, { occurrences = { rows = { 3 }, positions = { 1 } } }) end,
      "option 'occurrences.rows': 3 is not a row (0 to 2)")
    spec.raises(function() sim.vectors(m, texts, { occurrences = { rows = { 0 } } }) end,
      "option 'occurrences' needs both 'rows' and 'positions'")
    spec.raises(function() sim.vectors(m, texts, { target = " book" }) end,
      "rows: row 1 does not contain the target token")
    spec.raises(function() sim.vectors(m, texts, { positions = { 1, 2 } }) end,
      "option 'positions': 2 positions for 3 rows")
    spec.raises(function() sim.vectors(m, texts, { positions = { 1, 2, 9 } }) end,
      "option 'positions': 9 is outside row 2 (4 tokens)")
    spec.raises(function() sim.vectors(m, texts, { target = " her", layers = { 1 } }) end,
      "option 'layers' picks the layers of a 'sites' template; give 'sites' with it")
    spec.raises(function() sim.vectors(m, texts, { target = " her", sites = "blocks.{L}.attn.hook_qq" }) end,
      "option 'sites'")
    spec.raises(function() sim.vectors(m, texts, { target = " her", sites = { "blocks.0.attn.hook_q",
      "blocks.0.mlp.hook_post" } }) end, "all sites must have the same number of units")
    spec.raises(function() sim.vectors(m, texts, { occurrences = { 1, 2 } }) end,
      "option 'occurrences' must be a table {rows =, positions =}")
    spec.raises(function() sim.vectors(m, texts, { target = " her", skip = -1 }) end, "option 'skip' must be 0 or more")
    spec.raises(function() sim.vectors(m, texts, { target = " her", others = 1 }) end, "option 'others'")
  end)
end)

for _, name in ipairs({ "pythia-tiny", "llama-tiny" }) do
  spec.describe("similarity.vectors on " .. name, function()
    local m, expected = spec.golden(golden_dir, name)
    spec.it("Q and (grouped-query) K at the given positions, batched with padding", function()
      local ids = expected.input_ids[0]
      local n = ids:numel()
      local rows = { ids, ids:narrow(0, 0, n - 2), ids:narrow(0, 1, n - 1) }
      local padded = tensor.zeros({ 3, n }):long()
      local mask = tensor.zeros({ 3, n }):long()
      for i, r in ipairs(rows) do
        padded[i - 1]:narrow(0, 0, r:numel()):copy(r)
        mask[i - 1]:narrow(0, 0, r:numel()):fill(1)
      end
      local sites = { "blocks.0.attn.hook_k", "blocks.1.attn.hook_k" }
      local r = sim.vectors(m, { ids = padded, mask = mask }, { positions = { 2, -1, 0 },
        sites = "blocks.{L}.attn.hook_k", others = true, batch_size = 2 })
      local v, o = reference(m, rows, { 2, n - 3, 0 }, sites, 0)
      spec.truthy(max_diff(r.vectors, v) < 1e-5, name .. ": vectors")
      spec.truthy(max_diff(r.other_vectors, o) < 1e-5, name .. ": others")
      spec.eq(r.units, r.shape[1] * r.shape[2])
    end)
  end)
end

spec.finish()
