-- Writes a randomly initialised GPT-2 of a given shape (config.json + model.safetensors) for the
-- side-by-side benchmark: the cost of a pass does not depend on the weights.
--
--   llmscope run bench/make_random_gpt2.lua -- DIR LAYERSxD_MODEL[xVOCAB]
local bench = require("lib.bench")
local dir, shape = arg[1], arg[2]
if not dir or not shape then error("usage: make_random_gpt2.lua -- DIR LAYERSxD_MODEL[xVOCAB]", 0) end
bench.random_gpt2(dir, bench.shape(shape))
print(dir)
