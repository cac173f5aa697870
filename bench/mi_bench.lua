-- Benchmark: the mutual-information estimators (lessons 13-08 to 13-14) against the course's
-- Python: every pair of UNITS dimensions over TOKENS samples with the binned estimator
-- (stats.mi_matrix vs numpy's histogram2d per pair), and KNN_PAIRS pairs of KNN_SAMPLES samples
-- with the kNN estimator (stats.mi_knn batched vs scikit-learn's mutual_info_regression per
-- pair). Random normal data; the Python side runs bench/mi_reference.py in the same run (Debian's
-- python3-numpy and python3-sklearn). Then the mi plugin against the Lua method on the model
-- (--model): MI between the first UNITS dimensions of every hidden state over TOKENS tokens of
-- Brown fiction, in rows of 128, one pass per row with hidden_states and stats.mi_matrix of the
-- stacked tokens. Best of REPEATS, wall time.
--
--   llmscope run bench/mi_bench.lua [--model DIR] [-- TOKENS UNITS KNN_SAMPLES KNN_PAIRS REPEATS]
local bench = require("lib.bench")
local tokens = tonumber(arg[1] or "1000")
local units = tonumber(arg[2] or "128")
local knn_samples = tonumber(arg[3] or "1000")
local knn_pairs = tonumber(arg[4] or "20")
local repeats = tonumber(arg[5] or "3")

local h = tensor.randn({ tokens, units }, { seed = 0, dtype = "float64" })
local t_matrix = bench.best_of(repeats, function() stats.mi_matrix(h) end)
local x = tensor.randn({ knn_samples, knn_pairs }, { seed = 1, dtype = "float64" })
local y = x * 0.5 + tensor.randn({ knn_samples, knn_pairs }, { seed = 2, dtype = "float64" })
local t_knn = bench.best_of(repeats, function() stats.mi_knn(x, y) end)

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "bench"
local cmd = ("/usr/bin/python3 %s/mi_reference.py %d %d %d %d 2>&1"):format(here, tokens, units, knn_samples, knn_pairs)
local p = assert(io.popen(cmd))
local line = p:read("a")
p:close()
local py_binned = tonumber(line:match('"binned_s": ([%d%.e%-]+)'))
local py_knn = tonumber(line:match('"knn_s": ([%d%.e%-]+)'))
if not (py_binned and py_knn) then error("bench/mi_reference.py failed: " .. line, 0) end

local pairs_count = units * (units - 1) // 2
print("| work | llmscope | Python (course's method) | speed-up |")
print("|---|---|---|---|")
print(("| binned MI, %d pairs × %d tokens | %.3f s (`stats.mi_matrix`) | %.3f s (`np.histogram2d` per pair) | %.0fx |")
  :format(pairs_count, tokens, t_matrix, py_binned, py_binned / t_matrix))
print(("| kNN MI, %d pairs × %d samples | %.3f s (`stats.mi_knn`) | %.3f s (`mutual_info_regression` per pair) | %.1fx |")
  :format(knn_pairs, knn_samples, t_knn, py_knn, py_knn / t_knn))

-- The plugin against one pass per row from Lua, on the model.
local m = model.load()
local mi = plugin("mi")
local ids = bench.fiction_ids(m, tokens)
local seq_len = math.min(128, m.max_positions)
local rows = ids:narrow(0, 0, (ids:numel() // seq_len) * seq_len):reshape({ -1, seq_len })
local chosen = tensor.arange(math.min(units, m.d_model))
local plugin_out, lua_out
local t_plugin = bench.best_of(repeats, function() plugin_out = mi.pairwise(m, rows, { units = chosen }).mi end)
local t_lua = bench.best_of(repeats, function()
  local per = {}
  for r = 0, rows:size(0) - 1 do
    local _, out = m:forward(rows[r]:unsqueeze(0), { hidden_states = true })
    for l = 0, m.n_layer do
      per[l + 1] = per[l + 1] or {}
      table.insert(per[l + 1], out.hidden_states[l][0]:index(1, chosen))
    end
  end
  lua_out = {}
  for l = 1, #per do lua_out[l] = stats.mi_matrix(tensor.cat(per[l], 0):double()) end
end)
local worst = 0
for l = 1, #lua_out do worst = math.max(worst, (lua_out[l] - plugin_out[l - 1]):abs():max():item()) end
print(("%s, %d tokens in rows of %d, %d dimensions of %d hidden states; max |difference| %.2g"):format(tostring(m),
  rows:numel(), seq_len, chosen:numel(), m.n_layer + 1, worst))
print("| work | mi plugin | one pass per row + stats.mi_matrix from Lua | speed-up |")
print("|---|---|---|---|")
print(("| pairwise MI of every hidden state | %.3f s | %.3f s | %.1fx |"):format(t_plugin, t_lua, t_lua / t_plugin))
