-- Plugins from Lua: loading by name, calling with every kind of value, errors naming the
-- plugin and function, native hooks, and the in-tree replace plugin against its golden.
package.path = arg[0]:gsub("[^/]+$", "") .. "../lua/?.lua;" .. package.path
local spec = require("spec")
local golden_dir = arg[1]
local expected = tensor.load(golden_dir .. "/gpt2-tiny/expected.safetensors")
local m = model.load()
local row = expected.input_ids:narrow(0, 0, 1)

spec.describe("plugin()", function()
  local t = plugin("testing")
  spec.it("exposes functions, docs and metadata", function()
    spec.eq(t._name, "testing")
    spec.eq(t._version, "2.1.0")
    spec.truthy(t._doc.add:find("add(a, b)", 1, true))
    spec.eq(t.add(2, 3.5), 5.5)
  end)
  spec.it("marshals every kind of value both ways", function()
    spec.eq(t.echo(nil), nil)
    spec.eq(t.echo(true), true)
    spec.eq(t.echo(7), 7)
    spec.eq(math.type(t.echo(7)), "integer")
    spec.eq(t.echo(2.5), 2.5)
    spec.eq(t.echo("text"), "text")
    spec.truthy(t.echo(tensor.ones({ 2 })):equal(tensor.ones({ 2 })))
    spec.eq(tostring(t.echo(m)), tostring(m))
    spec.same(t.echo({ 1, "two", { 3 } }), { 1, "two", { 3 } })
    local echoed = t.echo({ a = 1, b = { c = "d" } })
    spec.eq(echoed.a, 1)
    spec.eq(echoed.b.c, "d")
    spec.eq(t.count({ 1, 2, 3 }), 3)
    spec.eq(t.optional(), "nothing")
    spec.eq(t.optional(4), "got 4")
    spec.same(t.ids({ 4, 5 }):tolist(), { 4, 5 })
  end)
  spec.it("reports bad arguments like Lua", function()
    spec.raises(function() t.add(1, "two") end, "bad argument #2 to 'add' (number expected, got string)")
    spec.raises(function() t.options({ scal = 2 }) end, "bad argument #1 to 'options' (unknown option 'scal'")
    spec.raises(function() t.echo(print) end, "a function cannot be passed to a plugin")
  end)
  spec.it("turns plugin exceptions into errors naming plugin and function", function()
    spec.raises(function() t.boom() end, "plugin 'testing' function 'boom': something broke inside")
    spec.raises(function() t.torch_boom() end, "plugin 'testing' function 'torch_boom': shape '[3]' is invalid")
  end)
  spec.it("installs native hooks that run without Lua", function()
    local before = t.hook_calls()
    t.install_hook(m, "blocks.0.mlp.hook_pre")
    m:forward(row)
    spec.eq(t.hook_calls(), before + 1)
    m:clear_hooks()
  end)
  spec.it("refuses broken plugins and stays usable", function()
    spec.raises(function() plugin("abi_major") end, "plugin ABI 99.")
    spec.raises(function() plugin("throwing_init") end, "failed to initialise: cannot find my data file")
    spec.raises(function() plugin("nonexistent") end, "plugin 'nonexistent' not found")
    spec.eq(plugin("testing").add(1, 1), 2)
  end)
  spec.it("unloads and reloads; functions taken before stay callable", function()
    local add = t.add
    plugins.unload("testing")
    spec.eq(add(1, 2), 3)
    spec.eq(plugin("testing").add(2, 2), 4)
  end)
  spec.it("lists plugins with their problems", function()
    local found = {}
    for _, p in ipairs(plugins.list()) do found[p.name or p.path] = p end
    spec.truthy(found.testing and found.testing.version == "2.1.0")
    spec.truthy(found.replace ~= nil, "in-tree replace plugin")
  end)
end)

spec.describe("replace plugin", function()
  local replace = plugin("replace")
  spec.it("median replacement matches the Hugging Face golden", function()
    local out = replace.run(m, row, { site = "blocks.1.mlp.hook_post", mode = "median", fraction = 0.1 })
    spec.truthy(out.logits:allclose(expected["median.logits"], 1e-4, 1e-4))
    spec.same(out.replaced:shape(), { 1, 25 })
  end)
  spec.it("zeroing chosen units equals a Lua hook doing the same", function()
    local units = { 3, 5, 7, 100 }
    local out = replace.run(m, row, { layer = 2, mode = "zero", units = units, position = 4 })
    local want = m:run_with_hooks(row, {
      ["blocks.2.mlp.hook_pre"] = function(act)
        local copy = act:clone()
        copy[0][4] = copy[0][4]:index_fill(0, tensor.new(units), 0)
        return copy
      end,
    })
    spec.truthy(out.logits:allclose(want, 1e-6, 1e-6))
  end)
  spec.it("rejects bad options", function()
    spec.raises(function() replace.run(m, row, { mode = "max" }) end, "option 'mode' must be 'median', 'zero' or 'mean'")
    spec.raises(function() replace.run(m, row, { layer = 9 }) end, "9 is not a layer of this 3-layer model")
    spec.raises(function() replace.run(m, row, { position = 40 }) end, "position 40 is outside the 16 tokens")
    spec.raises(function() replace.run(m, row, { fraction = 0 }) end, "option 'fraction' must be in (0, 1]")
    spec.raises(function() replace.run(m, row, { colour = 1 }) end, "unknown option 'colour'")
  end)
end)

-- One rule for layers and sites in every in-tree plugin (plugin_args.hpp): negative layers count
-- from the end, a bare number is a list of one, a repeat or an unknown layer is the same error.
spec.describe("layers and sites, the same in every plugin", function()
  local replace, subspace, tl = plugin("replace"), plugin("subspace"), plugin("token_length")
  local tlesion, negation = plugin("tlesion"), plugin("negation")
  local pos = {}
  for i = 1, 4 do pos[i] = 3 end
  local rows = row:expand({ 4, row:size(1) })
  local calls = {
    replace = function(layers) return replace.sweep(m, row, { layers = layers, rates = { 0.5 } }).layers end,
    subspace = function(layers) return subspace.sweep(m, row, { layers = layers }).layers end,
    token_length = function(layers)
      return tl.scan(m, row[0], { layers = layers, lengths = tensor.arange(row:size(1)) % 3 + 1 }).layers
    end,
    tlesion = function(layers)
      return tlesion.select(m, rows, (rows + 1) % m.vocab_size, { positions_a = pos, positions_b = pos, layers = layers }).layers
    end,
    negation = function(layers)
      local w = row:narrow(1, 0, 12)
      return negation.scan(m, w:expand({ 3, 12 }), ((w + 1) % m.vocab_size):expand({ 3, 12 }), { layers = layers, target = 10 }).layers
    end,
  }
  for name, call in pairs(calls) do
    spec.it(name .. ": -1 is the last layer, a bare number a list of one", function()
      spec.same(call({ -1, 0 }), { 2, 0 })
      spec.same(call(1), { 1 })
    end)
    spec.it(name .. ": the same errors", function()
      spec.raises(function() call({ 1, -2 }) end, "option 'layers': layer 1 is given twice")
      spec.raises(function() call({ 3 }) end,
        "option 'layers': 3 is not a layer of this 3-layer model (0 to 2, or -3 to -1 from the end)")
      spec.raises(function() call({}) end, "option 'layers' is empty")
    end)
  end
  spec.it("one layer: replace.run and subspace.remove take -1 as the last layer", function()
    spec.eq(subspace.remove(m, row, { layer = -1 }).layer, 2)
    local last = replace.run(m, row, { layer = 2 })
    spec.truthy(replace.run(m, row, { layer = -1 }).logits:equal(last.logits))
  end)
end)

spec.finish()
