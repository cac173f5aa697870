-- Benchmark: a corpus scan's memory as the corpus grows (issue 22). The token_length plugin's
-- streaming scan over the first N tokens of the Brown corpus on the model; prints the process's
-- peak resident memory (VmHWM) after the scan. Run it at 1x and 10x the tokens: a streaming scan
-- keeps its state per layer, so the peak should not grow with the text beyond the token ids.
--
--   llmscope run bench/scan_memory.lua [--model DIR] -- [--tokens 20000]
local bench = require("lib.bench")
local opts = bench.options({ tokens = 20000 })
local m = model.load()
local tl = plugin("token_length")
local text = corpus.brown():text()
local ids = m:tokenize(text:sub(1, math.min(#text, 8 * opts.tokens)))
local n = math.min(opts.tokens, ids:size(-1))
local lengths = tl.lengths(m, ids, { tokens = n }).lengths
local wall = bench.timed(function() tl.scan(m, ids, { tokens = n, lengths = lengths }) end)
local status = assert(io.open("/proc/self/status")):read("a")
print(("%d tokens  %.1f s  peak resident %s"):format(n, wall, status:match("VmHWM:%s*([^\n]+)")))
