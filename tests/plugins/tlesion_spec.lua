-- The tlesion plugin: its t-tests and FDR decisions against the stats module on activations
-- captured with run_with_cache at the same positions, lesions against Lua hooks doing the same,
-- the clean-run identity (lesioning nothing gives delta = 0 exactly), and its error messages.
-- Runs on the tiny GPT-2 / GPT-Neo / BERT fixtures (ids only), a random 12-layer GPT-2 with
-- GPT-2's tokenizer and a random 12-layer BERT with a WordPiece vocabulary (texts).
-- args: GOLDEN_DIR RANDOM_GPT2_DIR RANDOM_BERT_DIR
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir, random_gpt2_dir, random_bert_dir = arg[1], arg[2], arg[3]
local tl = plugin("tlesion")

local gpt2 = model.load(golden_dir .. "/gpt2-tiny")
local neo = model.load(golden_dir .. "/gpt-neo-tiny")
local bert = model.load(golden_dir .. "/bert-tiny")

-- Condition pairs made of ids: random rows of different lengths (right-padded), each with one
-- target token at its own position: `a_token` in A, `b_token` in B, everything else the same.
local A_TOKEN, B_TOKEN, MASK_TOKEN = 5, 7, 4
local function pairs_of(n, seed, width)
  width = width or 10
  local ids = (tensor.rand({ n, width }, { seed = seed }) * 900 + 20):floor():long()
  local lengths = (tensor.rand({ n }, { seed = seed + 1 }) * 5 + (width - 4)):floor():long()
  local mask = tensor.zeros({ n, width }, { dtype = "int64" })
  local positions = {}
  for r = 0, n - 1 do
    local len = lengths[r]:item()
    mask[r]:narrow(0, 0, len):fill(1)
    positions[r + 1] = (r * 3) % (len - 1) + 1
  end
  local a, b = ids:clone(), ids:clone()
  for r = 0, n - 1 do
    a[r][positions[r + 1]] = A_TOKEN
    b[r][positions[r + 1]] = B_TOKEN
  end
  return { ids = a, mask = mask }, { ids = b, mask = mask }, positions
end

-- [rows, units] activations of `site` at one position per row (0-based positions in a Lua list).
local function gathered(m, input, site, positions)
  local _, cache = m:run_with_cache(input, { names = site })
  local act = cache[site]
  local rows = {}
  for r, p in ipairs(positions) do rows[r] = act[r - 1][p] end
  return tensor.stack(rows)
end

local function max_abs(t) return t:abs():max():item() end
local function both(x, y) return (x:long() * y:long()):bool() end

-- The plugin's selection at `layer` equals stats.* on activations captured at the same positions.
local function check_against_stats(m, sel, a, b, pos_a, pos_b, layer, i, test)
  local site = "blocks." .. layer .. ".mlp.hook_pre"
  local xa, xb = gathered(m, a, site, pos_a), gathered(m, b, site, pos_b)
  local r = test == "independent" and stats.ttest_ind(xa, xb) or stats.ttest_rel(xa, xb)
  local fdr = stats.fdr(r.p)
  -- The plugin's passes batch rows unlike run_with_cache: float32 rounding differs (spec.F32_*).
  spec.truthy(sel.t[i]:allclose(r.t, spec.F32_RTOL, spec.F32_ATOL), "t at layer " .. layer .. " (max diff " .. max_abs(sel.t[i] - r.t) .. ")")
  spec.truthy(sel.p[i]:allclose(r.p, 1e-2, 1e-12), "p at layer " .. layer)
  spec.truthy(sel.p_adjusted[i]:allclose(fdr.p_adjusted, 1e-2, 1e-12), "FDR-adjusted p at layer " .. layer)
  -- The test itself, on the plugin's own t and p: exact.
  local own = stats.fdr(sel.p[i])
  spec.truthy(sel.p_adjusted[i]:allclose(own.p_adjusted, 1e-12, 1e-15), "FDR of the plugin's p at layer " .. layer)
  spec.truthy(sel.a_gt_b[i]:equal(both(own.rejected, sel.t[i]:gt(0))), "A > B mask at layer " .. layer)
  spec.truthy(sel.b_gt_a[i]:equal(both(own.rejected, sel.t[i]:lt(0))), "B > A mask at layer " .. layer)
  return fdr.rejected:sum():item()
end

spec.describe("tlesion.select", function()
  local a, b, pos = pairs_of(16, 1)
  spec.it("paired t and FDR equal stats.ttest_rel + stats.fdr at the target positions (GPT-2)", function()
    local sel = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, batch_size = 6 })
    spec.same(sel.layers, { 0, 1, 2 })
    spec.same(sel.t:shape(), { 3, 256 })
    spec.same(sel.positions_a:tolist(), pos)
    spec.same(sel.positions_b:tolist(), pos)
    spec.eq(sel.test, "paired")
    spec.eq(sel.units, 256)
    local significant = 0
    for layer = 0, 2 do significant = significant + check_against_stats(gpt2, sel, a, b, pos, pos, layer, layer, "paired") end
    spec.truthy(significant > 0, "some neurons differ between the conditions")
    spec.truthy(sel.count_a_gt_b:equal(sel.a_gt_b:sum(1)))
    spec.truthy(sel.percent_b_gt_a:allclose(sel.b_gt_a:sum(1):double() * (100 / 256)))
  end)
  spec.it("caps each set at max_units, keeping the significant units with the largest |t|", function()
    local all = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN })
    local capped = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, max_units = 3 })
    spec.eq(capped.max_units, 3)
    spec.truthy(capped.t:equal(all.t), "the test itself is unchanged")
    spec.truthy(capped.significant_a_gt_b:equal(all.count_a_gt_b), "significant counts before the cap")
    spec.truthy(capped.percent_a_gt_b:equal(all.percent_a_gt_b), "percentages describe the test")
    for layer = 0, 2 do
      for _, k in ipairs({ { "a_gt_b", "count_a_gt_b" }, { "b_gt_a", "count_b_gt_a" } }) do
        local full, cut = all[k[1]][layer], capped[k[1]][layer]
        local n = full:sum():item()
        spec.eq(cut:sum():item(), math.min(n, 3), k[1] .. " size at layer " .. layer)
        spec.eq(capped[k[2]][layer]:item(), math.min(n, 3))
        spec.truthy(cut:long():le(full:long()):all(), "a subset of the significant units")
        if n > 3 then
          -- Brute force: the kept units' |t| are the 3 largest among the significant ones.
          local kept = all.t[layer]:abs():masked_select(cut):sort()
          local best = all.t[layer]:abs():masked_select(full):sort(0, true):narrow(0, 0, 3):sort()
          spec.truthy(kept:equal(best), k[1] .. ": the largest |t| at layer " .. layer)
        end
      end
    end
    spec.raises(function() tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, max_units = -1 }) end,
      "option 'max_units' must be 0 (no cap) or more")
  end)
  spec.it("gives the same answer in one pass and in many (streaming accumulators)", function()
    local one = tl.select(gpt2, a, b, { positions_a = pos, positions_b = pos, batch_size = 64 })
    local many = tl.select(gpt2, a, b, { positions_a = pos, positions_b = pos, batch_size = 2 })
    spec.truthy(one.t:allclose(many.t, spec.F32_RTOL, spec.F32_ATOL), "t (max diff " .. max_abs(one.t - many.t) .. ")")
    spec.truthy(one.a_gt_b:equal(many.a_gt_b) and one.b_gt_a:equal(many.b_gt_a))
  end)
  spec.it("independent (Student) t equals stats.ttest_ind, with unequal group sizes", function()
    local b_rows = { ids = b.ids:narrow(0, 0, 11), mask = b.mask:narrow(0, 0, 11) }
    local pos_b = { table.unpack(pos, 1, 11) }
    local sel = tl.select(gpt2, a, b_rows, { test = "independent", target_a = A_TOKEN, target_b = B_TOKEN,
      layers = { 2, 0 }, batch_size = 5 })
    spec.same(sel.layers, { 2, 0 })
    spec.eq(sel.n_a, 16)
    spec.eq(sel.n_b, 11)
    check_against_stats(gpt2, sel, a, b_rows, pos, pos_b, 2, 0, "independent")
    check_against_stats(gpt2, sel, a, b_rows, pos, pos_b, 0, 1, "independent")
  end)
  spec.it("Welch's test on request equals stats.ttest_ind with equal_var = false", function()
    local b_rows = { ids = b.ids:narrow(0, 3, 9), mask = b.mask:narrow(0, 3, 9) }
    local sel = tl.select(gpt2, a, b_rows, { test = "independent", equal_var = false, target_a = A_TOKEN,
      target_b = B_TOKEN, layers = { 1 } })
    spec.eq(sel.equal_var, false)
    local xa = gathered(gpt2, a, "blocks.1.mlp.hook_pre", pos)
    local xb = gathered(gpt2, b_rows, "blocks.1.mlp.hook_pre", { table.unpack(pos, 4, 12) })
    local r = stats.ttest_ind(xa, xb, { equal_var = false })
    spec.truthy(sel.t[0]:allclose(r.t, spec.F32_RTOL, spec.F32_ATOL) and sel.df[0]:allclose(r.df, spec.F32_RTOL, spec.F32_ATOL))
    spec.truthy(sel.p[0]:allclose(r.p, 1e-2, 1e-12))
  end)
  spec.it("paired and independent tests differ on the same rows", function()
    local p = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, layers = { 1 } })
    local i = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, layers = { 1 }, test = "independent" })
    spec.truthy(max_abs(p.t - i.t) > 1e-3, "paired t differs from independent t")
    spec.truthy(p.df[0][0]:item() == 15 and i.df[0][0]:item() == 30, "df: n - 1 paired, n1 + n2 - 2 independent")
  end)
  spec.it("runs on GPT-Neo and BERT (t equals stats.ttest_rel)", function()
    local sel = tl.select(neo, a, b, { target = { A_TOKEN, B_TOKEN } })
    spec.same(sel.t:shape(), { 2, 256 })
    check_against_stats(neo, sel, a, b, pos, pos, 1, 1, "paired")
    local bsel = tl.select(bert, a, b, { positions_a = pos, positions_b = pos })
    spec.same(bsel.t:shape(), { 2, 128 })
    check_against_stats(bert, bsel, a, b, pos, pos, 0, 0, "paired")
    check_against_stats(bert, bsel, a, b, pos, pos, 1, 1, "paired")
  end)
  spec.it("accepts another site, a single position for every row and negative positions", function()
    local sel = tl.select(gpt2, a.ids, b.ids, { positions_a = -1, positions_b = -1, site = "blocks.{L}.hook_resid_post",
      layers = { -1 } })
    spec.same(sel.layers, { 2 })
    spec.same(sel.t:shape(), { 1, 64 })
    spec.eq(sel.positions_a[0]:item(), 9)
  end)
end)

spec.describe("tlesion.find", function()
  spec.it("finds each row's first target token", function()
    local a, _, pos = pairs_of(5, 3)
    spec.same(tl.find(gpt2, a, A_TOKEN):tolist(), pos)
    spec.same(tl.find(gpt2, a, { B_TOKEN, A_TOKEN }):tolist(), pos)
  end)
end)

spec.describe("tlesion.lesion", function()
  local a, _, pos = pairs_of(4, 5)
  local rows = a.ids
  spec.it("lesioning nothing gives delta = 0 exactly", function()
    local out = tl.lesion(gpt2, rows, { targets = { 1, 2, 3 }, readout = { 3, 6 } })
    spec.same(out.clean:shape(), { 4, 2, 3 })
    spec.eq(out.max_abs_delta, 0)
    spec.truthy(out.lesioned:equal(out.clean))
    local empty = tl.lesion(gpt2, rows, { targets = { 1, 2, 3 }, readout = { 3, 6 },
      lesions = { { row = 1, position = 3, layer = 1, neurons = {} },
                  { position = 2, layer = 0, neurons = tensor.zeros({ 256 }, { dtype = "bool" }) } } })
    spec.eq(empty.max_abs_delta, 0, "hooks installed but no unit zeroed")
    spec.same(empty.zeroed:tolist(), { 0, 0, 0, 0 })
  end)
  spec.it("changes only the lesioned row, from the lesioned position on (causal)", function()
    local units = { 3, 5, 7, 100, 200 }
    local out = tl.lesion(gpt2, rows, { targets = { 1, 2, 3 }, readout = { 2, 3, 6 },
      lesions = { { row = 1, position = 3, layer = 1, neurons = units } } })
    spec.eq(max_abs(out.delta[0]), 0, "row 0 untouched")
    spec.eq(max_abs(out.delta[2]) + max_abs(out.delta[3]), 0, "rows 2, 3 untouched")
    spec.eq(max_abs(out.delta[1][0]), 0, "position 2 comes before the lesion")
    spec.truthy(max_abs(out.delta[1][1]) > 0, "the lesioned position's logits change")
    spec.truthy(max_abs(out.delta[1][2]) > 0, "a later position's logits change")
    spec.same(out.zeroed:tolist(), { 0, 5, 0, 0 })
    spec.truthy(out.delta:equal(out.clean - out.lesioned))
    -- The same zeroing done by a Lua hook after the nonlinearity.
    local logits = gpt2:run_with_hooks(rows, {
      ["blocks.1.mlp.hook_post"] = function(act)
        local copy = act:clone()
        copy[1][3] = copy[1][3]:index_fill(0, tensor.new(units), 0)
        return copy
      end,
    })
    for k, p in ipairs({ 2, 3, 6 }) do
      local want = logits[1][p]:index(0, tensor.new({ 1, 2, 3 })):double()
      spec.truthy(out.lesioned[1][k - 1]:allclose(want, 1e-5, 1e-5), "lesioned logits at position " .. p)
    end
  end)
  spec.it("takes bool masks, per-row readout lists and a selection's sets", function()
    local mask = tensor.zeros({ 256 }, { dtype = "bool" })
    mask:narrow(0, 10, 20):fill(true)
    local out = tl.lesion(gpt2, rows, { targets = { 9 }, readout = { { 1 }, { 2 }, { 3 }, { -1 } },
      lesions = { { row = 3, position = -1, layer = 2, neurons = mask, target = 9 } } })
    spec.same(out.readout:tolist(), { { 1 }, { 2 }, { 3 }, { 9 } })
    spec.eq(out.zeroed[3]:item(), 20)
    spec.eq(out.signed[0]:item(), out.delta[3][0][0]:item())
    local _, b = pairs_of(4, 5)
    local sel = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN, test = "independent" })
    local via_set = tl.lesion(gpt2, rows, { targets = { 9 }, readout = { 6 }, selection = sel,
      lesions = { { row = 0, position = pos[1], layer = 0, neurons = "a" } } })
    local via_mask = tl.lesion(gpt2, rows, { targets = { 9 }, readout = { 6 },
      lesions = { { row = 0, position = pos[1], layer = 0, neurons = sel.a_gt_b[0] } } })
    spec.truthy(via_set.delta:equal(via_mask.delta))
    spec.eq(via_set.zeroed[0]:item(), sel.count_a_gt_b[0]:item())
  end)
  spec.it("reads [MASK] positions of a masked model by default and lesions act both ways (BERT)", function()
    local ids = rows:clone()
    ids[0][6] = MASK_TOKEN
    ids[1][6] = MASK_TOKEN
    local two = ids:narrow(0, 0, 2)
    local out = tl.lesion(bert, two, { targets = { 1, 2 }, mask_id = MASK_TOKEN,
      lesions = { { row = 1, position = 8, layer = 0, neurons = { 0, 1, 2, 3 } } } })
    spec.same(out.readout:tolist(), { { 6 }, { 6 } })
    spec.eq(max_abs(out.delta[0]), 0, "row 0 untouched")
    spec.truthy(max_abs(out.delta[1]) > 0, "a lesion after the [MASK] moves its logits in a bidirectional model")
  end)
end)

spec.describe("tlesion.laminar", function()
  local a, b, pos = pairs_of(12, 7)
  local test_rows = a.ids:narrow(0, 0, 3)
  spec.it("selects and lesions every layer; each layer equals lesion() with that layer's sets", function()
    local lam = tl.laminar(gpt2, a, b, test_rows, { target_a = A_TOKEN, target_b = B_TOKEN, targets = { A_TOKEN, B_TOKEN },
      readout = { pos[2], pos[3] },
      lesions = { { row = 1, position = pos[2], neurons = "a", target = A_TOKEN },
                  { row = 2, position = pos[3], neurons = "b", target = B_TOKEN } } })
    spec.same(lam.delta:shape(), { 3, 3, 2, 2 })
    spec.same(lam.signed:shape(), { 3, 2 })
    spec.same(lam.mean_abs_delta:shape(), { 3 })
    spec.eq(max_abs(lam.delta:select(1, 0)), 0, "row 0 (nothing lesioned) has delta = 0 at every layer")
    local sel = tl.select(gpt2, a, b, { target_a = A_TOKEN, target_b = B_TOKEN })
    spec.truthy(lam.percent_a_gt_b:equal(sel.percent_a_gt_b) and lam.b_gt_a:equal(sel.b_gt_a))
    for layer = 0, 2 do
      local one = tl.lesion(gpt2, test_rows, { targets = { A_TOKEN, B_TOKEN }, readout = { pos[2], pos[3] },
        lesions = { { row = 1, position = pos[2], layer = layer, neurons = sel.a_gt_b[layer] },
                    { row = 2, position = pos[3], layer = layer, neurons = sel.b_gt_a[layer] } } })
      spec.truthy(lam.delta[layer]:equal(one.delta), "delta at layer " .. layer)
      spec.near(lam.mean_abs_delta[layer]:item(), one.delta:narrow(0, 1, 2):abs():mean():item(), 1e-12)
      spec.eq(lam.signed[layer][0]:item(), one.delta[1][0][0]:item())
      spec.eq(lam.signed[layer][1]:item(), one.delta[2][1][1]:item())
      spec.same(lam.zeroed[layer]:tolist(), { 0, sel.count_a_gt_b[layer]:item(), sel.count_b_gt_a[layer]:item() })
    end
  end)
end)

spec.describe("tlesion with tokenizers", function()
  local him = { "I saw him at the market.", "We met him by the river.", "The dog followed him home.", "They thanked him twice." }
  local her = { "I saw her at the market.", "We met her by the river.", "The dog followed her home.", "They thanked her twice." }
  spec.it("selects from texts with one-token targets (GPT-2 BPE: ' him' / ' her')", function()
    local m = model.load(random_gpt2_dir)
    local sel = tl.select(m, him, her, { target_a = " him", target_b = " her", layers = { 0, 8 } })
    spec.same(sel.positions_a:tolist(), { 2, 2, 3, 2 })
    local xa = gathered(m, him, "blocks.8.mlp.hook_pre", { 2, 2, 3, 2 })
    local xb = gathered(m, her, "blocks.8.mlp.hook_pre", { 2, 2, 3, 2 })
    spec.truthy(sel.t[1]:allclose(stats.ttest_rel(xa, xb).t, spec.F32_RTOL, spec.F32_ATOL))
    spec.raises(function() tl.select(m, him, her, { target_a = "him", target_b = " her" }) end,
      "option 'target_a' (condition A): row 0 has no token 'him'")
    spec.raises(function() tl.select(m, him, her, { target_a = " him again", target_b = " her" }) end,
      "' him again' is 2 tokens for this tokenizer; a target must be one token (GPT-2 words mid-sentence start with a space")
    local out = tl.lesion(m, { "I saw", "We met" }, { targets = { " him", " her" } })
    spec.same(out.readout:tolist(), { { 1 }, { 1 } }, "causal default: each row's last token")
    spec.eq(out.max_abs_delta, 0)
  end)
  spec.it("selects and reads [MASK] positions from texts (BERT WordPiece)", function()
    local m = model.load(random_bert_dir)
    local sel = tl.select(m, him, her, { target_a = "him", target_b = "her", layers = { 11 } })
    local want = {}
    for i, text in ipairs(him) do
      for p, token in ipairs(m:tokens(text)) do
        if token == "him" and not want[i] then want[i] = p - 1 end
      end
    end
    spec.eq(m:tokens(him[1])[1], "[CLS]")
    spec.same(sel.positions_a:tolist(), want, "positions count [CLS] as 0")
    spec.same(sel.positions_b:tolist(), want)
    local out = tl.lesion(m, { "I saw [MASK] at the market.", "I saw him at the [MASK]." }, { targets = { "him", "her" },
      lesions = { { row = 0, position = 3, layer = 11, neurons = "b" } }, selection = sel })
    spec.same(out.readout:tolist(), { { 3 }, { 6 } })
    spec.eq(max_abs(out.delta[1]), 0)
  end)
end)

spec.describe("tlesion errors", function()
  local a, b, pos = pairs_of(6, 9)
  local short = { ids = b.ids:narrow(0, 0, 5), mask = b.mask:narrow(0, 0, 5) }
  spec.it("name the option and what was expected", function()
    spec.raises(function() tl.select(gpt2, a, short, { positions_a = pos, positions_b = 1 }) end,
      "bad argument #3 to 'select' (the paired test needs one B row per A row (got 6 A rows and 5 B rows")
    spec.raises(function() tl.select(gpt2, a, b, { positions_a = 12, positions_b = pos }) end,
      "option 'positions_a': position 12 of row 0 is outside its")
    spec.raises(function() tl.select(gpt2, a, b, { positions_a = { 1, 2 }, positions_b = pos }) end,
      "option 'positions_a': 2 positions for 6 rows")
    spec.raises(function() tl.select(gpt2, a, b, { target = 3, site = "blocks.{L}.mlp.hook_prex" }) end,
      "option 'site': unknown hook point 'blocks.0.mlp.hook_prex' (did you mean")
    spec.raises(function() tl.select(gpt2, a, b, { target = A_TOKEN, target_b = B_TOKEN, site = "blocks.1.mlp.hook_pre" }) end,
      "has no {L} for the layer")
    spec.raises(function() tl.select(gpt2, a, b, { target = 3 }) end, "option 'target' (condition A): row 0 has no token id 3")
    spec.raises(function() tl.select(gpt2, a, b, {}) end, "condition A needs option 'positions_a', 'target_a' or 'target'")
    spec.raises(function() tl.select(gpt2, a, b, { positions_a = pos, positions_b = pos, test = "welch" }) end,
      "option 'test' must be 'paired' or 'independent', got 'welch'")
    spec.raises(function() tl.select(gpt2, a, b, { positions_a = pos, positions_b = pos, layers = { 3 } }) end,
      "option 'layers': 3 is not a layer of this 3-layer model")
    spec.raises(function() tl.select(gpt2, a, b, { positions_a = pos, positions_b = pos, alpha = 2 }) end,
      "option 'alpha' must be in (0, 1)")
    spec.raises(function() tl.select(gpt2, a, b, { position_a = pos }) end, "unknown option 'position_a'")
    spec.raises(function() tl.select(gpt2, "text", b, { positions_a = pos }) end, "bad argument #2 to 'select'")
    local holed = a.mask:clone()
    holed[0][0] = 0
    spec.raises(function() tl.select(gpt2, { ids = a.ids, mask = holed }, b, { positions_a = pos }) end,
      "row 0 of the mask is not right-padded")
    spec.raises(function() tl.select(gpt2, { "some text" }, b, { positions_a = pos }) end, "this model has no tokenizer")
  end)
  spec.it("for lesions", function()
    local rows = a.ids
    spec.raises(function() tl.lesion(gpt2, rows, { readout = { 1 } }) end, "option 'targets' is required")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, readout = { 10 } }) end,
      "option 'readout': position 10 of row 0 is outside its 10 tokens")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, readout = { { 1 }, { 1, 2 } } }) end,
      "option 'readout': 2 lists of positions for 6 rows")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1000 } }) end,
      "option 'targets': token id 1000 is outside the vocabulary (0 to 999)")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, lesions = { { row = 0, position = 1, neurons = { 1 } } } }) end,
      "option 'lesions' entry 1: 'layer' is required")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, lesions = { { row = 6, position = 1, layer = 0, neurons = { 1 } } } }) end,
      "option 'lesions' entry 1: 'row' must be a row of the input (0 to 5)")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, lesions = { { position = 1, layer = 0, neurons = "a" } } }) end,
      "lesion neurons 'a' need option 'selection'")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, lesions = { { position = 1, layer = 0, neurons = { 256 } } } }) end,
      "lesion unit 256 is out of range for the 256 units of 'blocks.0.mlp.hook_post'")
    spec.raises(function() tl.lesion(gpt2, rows, { targets = { 1 }, site = "blocks.{L}.mlp.hook_psot",
      lesions = { { position = 1, layer = 0, neurons = { 1 } } } }) end, "option 'site': unknown hook point")
    spec.raises(function() tl.lesion(bert, rows, { targets = { 1 } }) end, "option 'readout' is needed")
    spec.raises(function() tl.laminar(gpt2, a, b, rows, { positions_a = pos, positions_b = pos, targets = { 1 },
      lesions = { { row = 0, position = 1, layer = 0, neurons = "a" } } }) end, "laminar() lesions every layer in turn; drop 'layer'")
  end)
end)

spec.finish()
