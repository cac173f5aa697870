-- Benchmark: the mutual-information estimators (lessons 13-08 to 13-14) against the course's
-- Python: every pair of UNITS dimensions over TOKENS samples with the binned estimator
-- (stats.mi_matrix vs numpy's histogram2d per pair), and KNN_PAIRS pairs of KNN_SAMPLES samples
-- with the kNN estimator (stats.mi_knn batched vs scikit-learn's mutual_info_regression per
-- pair). Random normal data; the Python side runs bench/mi_reference.py in the same run (Debian's
-- python3-numpy and python3-sklearn). Best of REPEATS, wall time.
--
--   llmscope run bench/mi_bench.lua [-- TOKENS UNITS KNN_SAMPLES KNN_PAIRS REPEATS]
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
