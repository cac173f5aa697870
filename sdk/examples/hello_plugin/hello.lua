-- Calls the example plugin from Lua: llmscope run hello.lua --model DIR [--plugin-path DIR]
local hello = plugin("hello")
print(hello.greet("researcher"))
print(hello.scale(tensor.new({ 1, 2, 3 }), 2))
local m = model.load()
local mean = hello.mean_activation(m, tensor.new({ { 1, 2, 3 } }), "blocks.0.mlp.hook_post")
print(string.format("mean activation of blocks.0.mlp.hook_post: %.6f", mean))
