-- Hooks from Lua: observers, interventions equal to the Hugging Face goldens, persistent hooks
-- and their handles, expired activations, and errors inside hooks.
local spec = require("spec")
local golden_dir = arg[1]
local expected = tensor.load(golden_dir .. "/gpt2-tiny/expected.safetensors")
local meta_ablate = { module = "transformer.h.1.mlp.act", neurons = { 3, 5, 7, 100 } }
local m = model.load()
local row = expected.input_ids:narrow(0, 0, 1)

spec.describe("scoped hooks", function()
  spec.it("observe each site once per pass, with a context", function()
    local seen = {}
    local _, out = m:run_with_hooks(row, {
      ["blocks.*.mlp.hook_post"] = function(act, ctx)
        seen[#seen + 1] = ctx.layer
        spec.eq(ctx.name, "blocks.*.mlp.hook_post")
        spec.eq(ctx.site, "transformer.h." .. ctx.layer .. ".mlp.act")
        spec.same(act:shape(), { 1, 16, 256 })
      end,
    })
    spec.same(seen, { 0, 1, 2 })
    spec.eq(out.hook_calls["blocks.*.mlp.hook_post"], 3)
  end)
  spec.it("zeroing neurons changes the logits exactly as the ablation golden", function()
    local neurons = tensor.new(meta_ablate.neurons)
    local logits = m:run_with_hooks(row, {
      [meta_ablate.module] = function(act) return act:index_fill(-1, neurons, 0) end,
    })
    spec.truthy(logits:allclose(expected["ablate.logits"], 1e-4, 1e-4))
    spec.falsy(logits:allclose(expected["nomask.logits"], 1e-4, 1e-4), "differs from clean")
  end)
  spec.it("median replacement matches its golden", function()
    local logits = m:run_with_hooks(row, {
      ["blocks.1.mlp.hook_post"] = function(act)
        local out = act:clone()
        local last = out[0][-1] -- a view into `out`: [d_mlp] at the last position
        local k = math.floor(0.1 * last:numel())
        local _, top = last:topk(k)
        out[0][-1] = last:index_fill(0, top, last:median():item())
        return out
      end,
    })
    spec.truthy(logits:allclose(expected["median.logits"], 1e-4, 1e-4))
  end)
  spec.it("hooks passed through forward's options work too", function()
    local calls = 0
    m:forward(row, { hooks = { ["blocks.0.hook_resid_post"] = function() calls = calls + 1 end } })
    spec.eq(calls, 1)
  end)
end)

spec.describe("persistent hooks", function()
  spec.it("stay until the handle removes them", function()
    local calls = 0
    local h = m:hook("blocks.0.mlp.hook_pre", function() calls = calls + 1 end)
    m:forward(row)
    m:forward(row)
    spec.eq(calls, 2)
    spec.truthy(h:active())
    h:remove()
    spec.falsy(h:active())
    m:forward(row)
    spec.eq(calls, 2)
    spec.truthy(tostring(h):find("removed", 1, true))
  end)
  spec.it("are removed by <close> at the end of a scope", function()
    local calls = 0
    do
      local h <close> = m:hook("blocks.2.hook_resid_post", function() calls = calls + 1 end)
      m:forward(row)
    end
    m:forward(row)
    spec.eq(calls, 1)
  end)
  spec.it("clear_hooks removes them all", function()
    local calls = 0
    m:hook("blocks.0.hook_resid_pre", function() calls = calls + 1 end)
    m:hook("blocks.1.hook_resid_pre", function() calls = calls + 1 end)
    m:clear_hooks()
    m:forward(row)
    spec.eq(calls, 0)
  end)
  spec.it("reject bad arguments the way Lua does", function()
    spec.raises(function() m:hook(nil, function() end) end, "bad argument #1 to 'hook' (hook point expected, got nil)")
    spec.raises(function() m.hook(m, nil, function() end) end, "bad argument #2 to 'hook' (hook point expected, got nil)")
    spec.raises(function() m:hook("blocks.0.mlp.hook_pre", 5) end,
      "bad argument #2 to 'hook' (function expected, got number)")
    spec.raises(function() m:hook("blocks.0.mlp.hook_prex", function() end) end,
      "did you mean 'blocks.0.mlp.hook_pre'")
  end)
end)

spec.describe("activations handed to hooks", function()
  spec.it("expire when the pass ends; a clone stays", function()
    local kept, cloned
    m:run_with_hooks(row, {
      ["blocks.0.hook_resid_post"] = function(act)
        kept = act
        cloned = act:clone()
        spec.eq(act:dim(), 3) -- usable inside the hook
      end,
    })
    local err = spec.raises(function() return kept:sum() end, "expired activation 'transformer.h.0'")
    spec.truthy(err:find("call :clone() there to keep it", 1, true), err)
    spec.raises(function() return kept + 1 end, "expired activation")
    spec.eq(cloned:dim(), 3)
  end)
  spec.it("expire even when the pass fails", function()
    local kept
    pcall(function()
      m:run_with_hooks(row, {
        ["blocks.0.hook_resid_post"] = function(act) kept = act end,
        ["blocks.1.hook_resid_post"] = function() error("stop here") end,
      })
    end)
    spec.raises(function() return kept:sum() end, "expired activation")
  end)
end)

spec.describe("errors inside hooks", function()
  spec.it("name the hook and keep the script's position", function()
    local err = spec.raises(function()
      m:run_with_hooks(row, { ["blocks.1.mlp.hook_pre"] = function() error("boom") end })
    end, "hook 'blocks.1.mlp.hook_pre' failed: ")
    spec.truthy(err:find("hooks_spec.lua:%d+: boom"), err)
  end)
  spec.it("reject replacements of the wrong shape or type", function()
    spec.raises(function()
      m:run_with_hooks(row, { ["blocks.0.mlp.hook_post"] = function(act) return act:narrow(-1, 0, 2) end })
    end, "returned a tensor of shape [1, 16, 2]")
    spec.raises(function()
      m:run_with_hooks(row, { ["blocks.0.mlp.hook_post"] = function() return "zero" end })
    end, "must return nil or a tensor, got string")
  end)
  spec.it("reject a malformed hooks table", function()
    spec.raises(function() m:run_with_hooks(row, { [1] = function() end }) end,
      "bad argument #2 to 'run_with_hooks' (hooks must be {[hook point] = function}")
  end)
  spec.it("allow running the model again inside a hook", function()
    local inner
    m:run_with_hooks(row, {
      ["blocks.0.hook_resid_post"] = function()
        inner = m:forward(row):sum():item()
      end,
    })
    spec.truthy(inner ~= nil)
  end)
end)

spec.finish()
