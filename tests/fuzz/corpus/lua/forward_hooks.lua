local m = model.load()
local logits, out = m:forward("The cat sat on the mat", { hidden_states = true, attentions = true })
print(logits:shape()[3], #out.hidden_states, out.attentions[0]:shape()[2])
local seen = 0
local h = m:hook("blocks.0.mlp.hook_pre", function(act) seen = seen + 1; return act * 0.5 end)
m:forward("Hello world")
h:remove()
local l2 = m:run_with_hooks("Hello world", {
  ["blocks.1.attn.hook_pattern"] = function(p) return p:clone() end,
  ["blocks.0.hook_resid_post"] = function(x) return x + 1 end,
})
local _, cache = m:run_with_cache("Hello world", { names = "blocks.*.hook_resid_pre", stop_at_layer = 2 })
print(seen, l2:shape()[2], cache["blocks.1.hook_resid_pre"]:shape()[2])
