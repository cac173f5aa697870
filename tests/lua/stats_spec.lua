-- The `stats` module: batch statistics against the scipy/statsmodels goldens in
-- tests/golden/stats, the streaming objects against the batch functions, and the exact text of
-- argument errors. Runs without a model:
--   llmscope run tests/lua/stats_spec.lua -- tests/golden
local spec = require("spec")
local describe, it = spec.describe, spec.it
local eq, near, same, raises, truthy, falsy = spec.eq, spec.near, spec.same, spec.raises, spec.truthy, spec.falsy

local golden_dir = arg[1] or "tests/golden"
local G = tensor.load(golden_dir .. "/stats/stats.safetensors")
local T = tensor.new

-- Elementwise |a - b| <= tol (1 + |b|), with nan where b has nan.
local function close(a, b, tol, what)
  if not tensor.is_tensor(b) then b = T(b, { dtype = "float64" }) end
  a, b = a:to("float64"), b:to("float64")
  local nan_a, nan_b = a:isnan(), b:isnan()
  if not nan_a:equal(nan_b) then
    error(string.format("%s: nan at different places: %s vs %s", what or "value", tostring(a), tostring(b)), 2)
  end
  local diff = (a - b):abs():masked_fill(nan_b, 0)
  local limit = (b:abs():masked_fill(nan_b, 0) + 1) * (tol or 1e-9)
  if (diff - limit):max():item() > 0 then
    error(string.format("%s: worst difference %g (expected %s, got %s)", what or "value",
      diff:max():item(), tostring(b), tostring(a)), 2)
  end
end

describe("t-tests", function()
  it("ttest_ind matches scipy, Student and Welch", function()
    local r = stats.ttest_ind(G["ttest.a"], G["ttest.b"])
    close(r.t, G["ttest_ind.t"], 1e-9, "t")
    close(r.p, G["ttest_ind.p"], 1e-9, "p")
    eq(r.df[0]:item(), 93.0, "df")
    local w = stats.ttest_ind(G["ttest.a"], G["ttest.b"], { equal_var = false })
    close(w.t, G["ttest_welch.t"], 1e-9, "Welch t")
    close(w.p, G["ttest_welch.p"], 1e-9, "Welch p")
    same(w.df:shape(), { 64 })
  end)

  it("ttest_rel and ttest_1samp match scipy (nan where the differences are all zero)", function()
    local a, b = G["paired.a"], G["paired.b"]
    local r = stats.ttest_rel(a, b)
    close(r.t, G["ttest_rel.t"], 1e-9, "t")
    close(r.p, G["ttest_rel.p"], 1e-9, "p")
    truthy(r.t[0]:isnan():item(), "column 0 is a - a")
    local one = stats.ttest_1samp(a - b, 0)
    close(one.t, G["ttest_1samp.t"], 1e-9, "t")
    eq(one.df[1]:item(), 39.0)
    -- mu defaults to 0; 1-D input is one neuron and gives 0-d results
    local x = T({ 1.0, 2.0, 3.0, 4.0 })
    near(stats.ttest_1samp(x).t:item(), 2.5 / math.sqrt(5 / 3 / 4), 1e-6)
    near(stats.ttest_1samp(x, 2.5).t:item(), 0.0, 1e-12)
    near(stats.ttest_1samp({ 1, 2, 3, 4 }).t:item(), 2.5 / math.sqrt(5 / 3 / 4), 1e-12, "a Lua table")
  end)

  it("follows scipy for zero variance: +-inf and p = 0, or nan", function()
    local r = stats.ttest_1samp(T({ { 1.0, 2.0 }, { 1.0, 2.0 } }), 2)
    eq(r.t[0]:item(), -math.huge)
    eq(r.p[0]:item(), 0.0)
    truthy(r.t[1]:isnan():item())
  end)

  it("rejects bad arguments", function()
    raises(function() stats.ttest_ind(nil, G["ttest.b"]) end,
      "bad argument #1 to 'ttest_ind' (tensor expected, got nil)")
    raises(function() stats.ttest_ind(G["ttest.a"], "b") end,
      "bad argument #2 to 'ttest_ind' (tensor expected, got string)")
    raises(function() stats.ttest_ind(tensor.zeros({ 5, 64 }), tensor.zeros({ 5, 32 })) end,
      "ttest_ind: a and b must have the same number of neurons (64 vs 32)")
    raises(function() stats.ttest_ind(G["ttest.a"], G["ttest.b"], { equal_vars = false }) end,
      "bad argument #3 to 'ttest_ind' (unknown option 'equal_vars' (expected equal_var))")
    raises(function() stats.ttest_ind(G["ttest.a"], G["ttest.b"], { equal_var = 1 }) end,
      "bad argument #3 to 'ttest_ind' (option 'equal_var' must be a boolean, got number)")
    raises(function() stats.ttest_rel(tensor.zeros({ 5, 4 }), tensor.zeros({ 6, 4 })) end,
      "ttest_rel: a and b must have the same number of samples (paired rows), got 5 and 6")
    raises(function() stats.ttest_rel(tensor.zeros({ 5, 4 })) end,
      "bad argument #2 to 'ttest_rel' (tensor expected, got no value)")
    raises(function() stats.ttest_1samp(tensor.zeros({ 0, 4 })) end,
      "ttest_1samp: x has no samples (dim 0 is empty)")
    raises(function() stats.ttest_1samp(tensor.zeros({ 3, 4 }), "zero") end,
      "bad argument #2 to 'ttest_1samp' (number expected, got string)")
  end)
end)

describe("multiple comparisons", function()
  it("fdr matches statsmodels fdrcorrection", function()
    local c = stats.fdr(G["fdr.p"], { alpha = 0.05 })
    truthy(c.rejected:equal(G["fdr.rejected"]:to("bool")), "rejected")
    close(c.p_adjusted, G["fdr.p_adjusted"], 1e-12, "adjusted")
    eq(stats.fdr(G["fdr.p"]).rejected:sum():item(), c.rejected:sum():item(), "alpha defaults to 0.05")
  end)

  it("bonferroni multiplies by m and caps at 1; tables work too", function()
    local c = stats.bonferroni({ 0.01, 0.2, 0.0125, 0.5 })
    close(c.p_adjusted, { 0.04, 0.8, 0.05, 1.0 }, 1e-15)
    same(c.rejected:tolist(), { true, false, true, false })
    same(stats.bonferroni({ 0.01, 0.2 }, { alpha = 0.01 }).rejected:tolist(), { false, false })
  end)

  it("rejects bad arguments", function()
    raises(function() stats.fdr({ 0.1, 1.5 }) end, "fdr: p-values must be in [0, 1], found 1.500000")
    raises(function() stats.fdr({ 0.1 }, { alpha = 2 }) end,
      "bad argument #2 to 'fdr' (option 'alpha' must be in (0, 1))")
    raises(function() stats.bonferroni({ 0.1 }, { aplha = 0.1 }) end,
      "bad argument #2 to 'bonferroni' (unknown option 'aplha' (expected alpha))")
    raises(function() stats.fdr(0.5) end, "bad argument #1 to 'fdr' (tensor expected, got number)")
    raises(function() stats.fdr({ 0.1, "x" }) end,
      "bad argument #1 to 'fdr' (table of numbers expected, entry 2 is not a number)")
  end)
end)

describe("logit", function()
  it("matches statsmodels and flags the separated column 5", function()
    local r = stats.logit(G["logit.x"], G["logit.y"])
    local keep = tensor.arange(64):ne(5)
    local function fitted(t) return t:index(-1, keep:nonzero():flatten()) end
    close(fitted(r.coef), fitted(G["logit.params"]), 1e-6, "coef")
    close(fitted(r.p), fitted(G["logit.pvalues"]), 1e-6, "p")
    close(fitted(r.accuracy), fitted(G["logit.accuracy"]), 1e-12, "accuracy")
    same(r.separated:nonzero():flatten():tolist(), { 5 })
    falsy(r.converged[5]:item(), "column 5 converged")
    eq(r.converged:sum():item(), 63)
    truthy(r.coef:select(1, 5):isnan():all(), "no coefficients for a separated column")
    eq(r.accuracy[5]:item(), 1.0)
    same(r.se:shape(), { 2, 64 })
    eq(r.iterations:dtype(), "int64")
  end)

  it("takes max_iter and tol", function()
    local r = stats.logit(G["logit.x"], G["logit.y"], { max_iter = 1, tol = 1e-10 })
    eq(r.converged:sum():item(), 0)
    eq(r.iterations:max():item(), 1)
  end)

  it("rejects bad arguments", function()
    raises(function() stats.logit(G["logit.x"], G["logit.y"], { max_iter = 0 }) end,
      "bad argument #3 to 'logit' (option 'max_iter' must be at least 1)")
    raises(function() stats.logit(G["logit.x"], G["logit.y"], { tol = -1 }) end,
      "bad argument #3 to 'logit' (option 'tol' must be > 0)")
    raises(function() stats.logit(G["logit.x"], G["logit.y"], { maxiter = 5 }) end,
      "bad argument #3 to 'logit' (unknown option 'maxiter' (expected max_iter, tol))")
    raises(function() stats.logit(G["logit.x"], G["logit.x"]:select(1, 0)) end,
      "logit: y must hold only 0 and 1")
    raises(function() stats.logit(G["logit.x"], tensor.zeros({ 3 })) end,
      "logit: y must be a [samples] vector with one value per row of x (x has 120 samples, y has shape [3])")
    raises(function() stats.logit(G["logit.x"]) end,
      "bad argument #2 to 'logit' (tensor expected, got no value)")
  end)
end)

describe("pearson, histogram, pca, cosine_matrix", function()
  it("pearson matches scipy", function()
    close(stats.pearson(G["corr.acts"], G["corr.v"]), G["corr.r"], 1e-10, "r")
    raises(function() stats.pearson(G["corr.acts"], tensor.zeros({ 4 })) end,
      "pearson: v must be a [samples] vector with one value per row of acts (acts has 500 samples, v has shape [4])")
    raises(function() stats.pearson(G["corr.acts"]) end,
      "bad argument #2 to 'pearson' (tensor expected, got no value)")
  end)

  it("histogram matches np.histogram, counts by default and density on request", function()
    close(stats.histogram(G["hist.x"], G["hist.edges"], { density = true }), G["hist.density"], 1e-12, "density")
    local counts = stats.histogram(G["hist.x"], G["hist.edges"])
    eq(counts:dtype(), "int64")
    same(stats.histogram({ 0, 1, 2, 4, 5 }, { 0, 2, 4 }):tolist(), { 2, 2 }, "right edge inclusive")
    same(stats.histogram(T({ { 0, 3 }, { 1, 1 } }), { 0, 2, 4 }):tolist(), { { 2, 1 }, { 0, 1 } }, "per neuron")
    raises(function() stats.histogram(G["hist.x"], { 0, 0 }) end, "histogram: edges must be strictly increasing")
    raises(function() stats.histogram(G["hist.x"], G["hist.edges"], { density = "yes" }) end,
      "bad argument #3 to 'histogram' (option 'density' must be a boolean, got string)")
    raises(function() stats.histogram(G["hist.x"]) end,
      "bad argument #2 to 'histogram' (tensor expected, got no value)")
  end)

  it("pca returns unit components and variance ratios", function()
    local x = tensor.randn({ 100, 6 }, { seed = 1, dtype = "float64" }) * T({ 5, 3, 1, 0.5, 0.2, 0.1 })
    local p = stats.pca(x, { k = 2 })
    same(p.components:shape(), { 2, 6 })
    truthy(p.components:matmul(p.components:t()):allclose(tensor.eye(2, { dtype = "float64" }), 1e-10, 1e-10))
    truthy(p.explained_variance_ratio[0]:item() > 0.6, "the first axis dominates")
    near(stats.pca(x).explained_variance_ratio:sum():item(), 1.0, 1e-12)
    same(p.mean:shape(), { 6 })
    eq(stats.pca(x, { center = false }).mean:abs():sum():item(), 0.0)
    near(p.singular_values[0]:item() ^ 2 / 99, p.explained_variance[0]:item(), 1e-9)
    raises(function() stats.pca(x, { k = 7 }) end,
      "pca: k must be between 1 and min(samples, features) = 6 (or 0 for all), got 7")
    raises(function() stats.pca(x, { k = -1 }) end, "bad argument #2 to 'pca' (option 'k' must be >= 1)")
    raises(function() stats.pca(x, { centre = true }) end,
      "bad argument #2 to 'pca' (unknown option 'centre' (expected k, center))")
  end)

  it("cosine_matrix compares rows", function()
    local x = T({ { 1, 0 }, { 0, 2 }, { 1, 1 } })
    local m = stats.cosine_matrix(x)
    same(m:shape(), { 3, 3 })
    near(m[0][2]:item(), 1 / math.sqrt(2), 1e-6)
    near(m[1][1]:item(), 1.0, 1e-6)
    same(stats.cosine_matrix(x, T({ { 2, 0 } })):shape(), { 3, 1 })
    raises(function() stats.cosine_matrix(x, T({ { 1, 2, 3 } })) end,
      "cosine_matrix: y must be [rows, 2] like x, got shape [1, 3]")
    raises(function() stats.cosine_matrix() end,
      "bad argument #1 to 'cosine_matrix' (tensor expected, got no value)")
  end)
end)

describe("similarity: correlation_matrix, rank, spearman, rsa, selectivity", function()
  -- The scipy 1.10 values of tests/unit/stats/similarity_test.cpp, through the Lua entry points.
  local x = T({ 3, 1, 4, 1, 5, 9, 2, 6, 5, 3 }, { dtype = "float64" })
  local y = T({ 2, 7, 1, 8, 2, 8, 1, 8, 2, 8 }, { dtype = "float64" })

  it("ranks, Spearman and its p-value match scipy", function()
    close(stats.rank(x), { 4.5, 1.5, 6.0, 1.5, 7.5, 10.0, 3.0, 9.0, 7.5, 4.5 }, 0, "ranks")
    local rho = stats.spearman(x, y)
    near(rho:item(), 0.13471506281091267, 1e-14)
    near(stats.correlation_p(rho, 10):item(), 0.71060088052238291, 1e-12)
    raises(function() stats.correlation_p(rho) end,
      "bad argument #2 to 'correlation_p' (number expected, got no value)")
  end)

  it("correlation_matrix centres each row; rsa and selectivity take stacks", function()
    local a = T({ { 1, 2, 4, 7 }, { 2, 1, 0, 3 }, { 5, 5, 6, 1 } }, { dtype = "float64" })
    near(stats.correlation_matrix(a)[0][2]:item(), -0.7670578361316337, 1e-14)
    close(stats.correlation_matrix(a), stats.cosine_matrix(a - a:mean(1, true)), 1e-12, "centred cosine")
    local s = stats.correlation_matrix(a:t():contiguous())   -- [4, 4]
    local same_twice = stats.rsa(tensor.stack({ s, s }), tensor.stack({ s, s }), { method = "spearman" })
    same(same_twice.r:shape(), { 2 })
    near(same_twice.r[1]:item(), 1, 1e-12)
    eq(same_twice.pairs, 6)
    same(stats.upper_triangle(s):shape(), { 6 })
    local sel = stats.selectivity(s, { 0, 0, 1, 1 })
    near(sel.ratio:item(), sel.within:item() / sel.between:item(), 1e-14)
    raises(function() stats.rsa(s, s, { method = "kendall" }) end,
      "bad argument #3 to 'rsa' (option 'method' must be \"pearson\" or \"spearman\", got \"kendall\")")
    raises(function() stats.selectivity(s, { 0, 0, 0, 0 }) end,
      "selectivity: every item has the same label (no between pair)")
  end)
end)

describe("information: entropy, mi_binned, mi_knn, kendall", function()
  local I = (function()
    local f = assert(io.open(golden_dir .. "/stats/information.json"))
    local text = f:read("a")
    f:close()
    return text
  end)()
  -- The first case of information.json (independent x and y, 200 samples), read by pattern.
  local function numbers(key)
    local list = I:match('"' .. key .. '": %[(.-)%]')
    local out = {}
    for v in list:gmatch("[^,%s]+") do out[#out + 1] = tonumber(v) end
    return T(out, { dtype = "float64" })
  end
  local function number(key) return tonumber(I:match('"' .. key .. '": ([^,%s]+)')) end

  it("match numpy's histograms and scikit-learn's KSG (in bits)", function()
    local x, y = numbers("x"), numbers("y")
    near(stats.mi_binned(x, y):item(), number("binned15"), 1e-12)
    near(stats.mi_binned(x, y, { bins = 7 }):item(), number("binned7"), 1e-12)
    near(stats.entropy(x):item(), number("entropy15_x"), 1e-12)
    near(stats.mi_knn(x, y):item() * math.log(2), number("knn3_unclipped_nats"), 1e-12)
    same(stats.mi_binned(tensor.stack({ x, y }, 1), tensor.stack({ y, x }, 1)):shape(), { 2 })
    local m = stats.mi_matrix(tensor.stack({ x, y }, 1))
    near(m[0][1]:item(), number("binned15"), 1e-12)
    near(m[0][0]:item(), number("entropy15_x"), 1e-12)
    raises(function() stats.mi_knn(x, y, { neighbours = 3 }) end,
      "bad argument #3 to 'mi_knn' (unknown option 'neighbours' (expected k))")
  end)

  it("kendall gives tau-b and the asymptotic p-value as scipy", function()
    local k = stats.kendall(T({ 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9 }),
      T({ 2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4 }))
    near(k.tau, 0.1570874410539306, 1e-14)
    near(k.p, 0.44489368769586524, 1e-12)
    raises(function() stats.kendall(T({ 1, 2 }), T({ 1 })) end, "kendall_tau: x and y must be vectors of the same length")
  end)
end)

describe("stats.running", function()
  it("equals the batch tests when fed in uneven chunks", function()
    local a, b = G["ttest.a"], G["ttest.b"]
    local r = stats.running({ groups = 2 })
    r:add(a:narrow(0, 0, 3), 0):add(a:narrow(0, 3, 37), 0)
    r:add(b:narrow(0, 0, 50), 1):add(b:narrow(0, 50, 5), 1)
    eq(r:count(0), 40)
    eq(r:count(1), 55)
    eq(r:groups(), 2)
    close(r:mean(0), a:mean(0), 1e-12, "mean")
    close(r:var(1), b:var(0), 1e-10, "var")
    close(r:var(1, { ddof = 0 }), b:var(0) * 54 / 55, 1e-10, "var ddof 0")
    close(r:std(0), a:std(0), 1e-10, "std")
    local t = r:ttest(0, 1)
    close(t.t, G["ttest_ind.t"], 1e-9, "Student t")
    close(t.p, G["ttest_ind.p"], 1e-9, "Student p")
    close(r:ttest(0, 1, { equal_var = false }).t, G["ttest_welch.t"], 1e-9, "Welch t")
    close(r:ttest_1samp(0, 0.1).t, stats.ttest_1samp(a, 0.1).t, 1e-10, "one-sample t")
    truthy(tostring(r):find("RunningStats(2 groups, 64 neurons, counts 40, 55)", 1, true), tostring(r))
  end)

  it("takes per-row labels, merges, and does paired tests from differences", function()
    local a, b = G["ttest.a"], G["ttest.b"]
    local x = tensor.cat({ a, b })
    local labels = tensor.cat({ tensor.zeros({ 40 }, { dtype = "int64" }), tensor.ones({ 55 }, { dtype = "int64" }) })
    local r1 = stats.running({ groups = 2 }):add(x:narrow(0, 0, 60), labels:narrow(0, 0, 60))
    local r2 = stats.running({ groups = 2 }):add(x:narrow(0, 60, 35), labels:narrow(0, 60, 35))
    r1:merge(r2)
    close(r1:ttest(0, 1).t, G["ttest_ind.t"], 1e-9, "merged Student t")
    local d = stats.running()
    d:add(G["paired.a"] - G["paired.b"])
    close(d:ttest_1samp().t, G["ttest_rel.t"], 1e-9, "paired t")
    close(d:ttest_1samp(0, 0).p, G["ttest_rel.p"], 1e-9, "paired p")
  end)

  it("rejects bad arguments", function()
    local r = stats.running({ groups = 2 })
    raises(function() r:mean(0) end, "RunningStats: no data added yet")
    r:add(tensor.zeros({ 4, 64 }))
    raises(function() r:add(tensor.zeros({ 4, 32 }), 0) end,
      "RunningStats: batch has 32 neurons, expected 64 (as in the first batch)")
    raises(function() r:add(tensor.zeros({ 4, 64 }), 2) end,
      "RunningStats: group 2 is out of range (groups are 0 to 1)")
    raises(function() r:add(tensor.zeros({ 4, 64 }), "a") end,
      "bad argument #2 to 'add' (number expected, got string)")
    raises(function() r:add() end, "bad argument #1 to 'add' (tensor expected, got no value)")
    raises(function() r:var(0, { ddof = -1 }) end, "bad argument #2 to 'var' (option 'ddof' must be >= 0)")
    raises(function() r:ttest(0) end, "bad argument #2 to 'ttest' (number expected, got no value)")
    raises(function() r:merge(stats.running({ groups = 3 })) end, "RunningStats: cannot merge 3 groups into 2")
    raises(function() r:merge({}) end, "bad argument #1 to 'merge' (RunningStats expected, got table)")
    raises(function() r.add(nil, tensor.zeros({ 1, 64 })) end,
      "bad argument #1 to 'add' (RunningStats expected, got nil)")
    raises(function() stats.running({ groups = 0 }) end,
      "bad argument #1 to 'running' (option 'groups' must be at least 1)")
    raises(function() stats.running({ group = 2 }) end,
      "bad argument #1 to 'running' (unknown option 'group' (expected groups))")
  end)
end)

describe("stats.topk", function()
  it("keeps the k best values with 0-based document and position", function()
    local acts = tensor.randn({ 6, 5, 3 }, { seed = 4 })  -- [docs, pos, neurons]
    local top = stats.topk(4, { neurons = 3 })
    top:add(acts:narrow(0, 0, 2), 0)
    top:add(acts:narrow(0, 2, 3))   -- numbered on: documents 2, 3, 4
    top:add(acts[5])                -- [pos, n]: one document, number 5
    eq(top:documents(), 6)
    eq(top:k(), 4)
    local r = top:result()
    same(r.values:shape(), { 4, 3 })
    local sorted = acts:reshape({ 30, 3 }):sort(0, true)
    truthy(r.values:equal(sorted:narrow(0, 0, 4):to("float64")), "values are the sorted top 4")
    for j = 0, 2 do
      local d, p = r.doc[0][j]:item(), r.pos[0][j]:item()
      eq(acts[d][p][j]:item(), r.values[0][j]:item(), "indices point at the value")
    end
    local bottom = stats.topk(2, { largest = false }):add(acts)
    eq(bottom:result().values[0][0]:item(), acts:select(2, 0):min():item())
    truthy(tostring(top):find("TopK(k 4, 3 neurons, 6 documents)", 1, true), tostring(top))
  end)

  it("rejects bad arguments", function()
    raises(function() stats.topk(0) end, "bad argument #1 to 'topk' (k must be at least 1)")
    raises(function() stats.topk("five") end, "bad argument #1 to 'topk' (number expected, got string)")
    raises(function() stats.topk(5, { neurons = 0 }) end,
      "bad argument #2 to 'topk' (option 'neurons' must be at least 1)")
    raises(function() stats.topk(5, { neuron = 3 }) end,
      "bad argument #2 to 'topk' (unknown option 'neuron' (expected neurons, largest))")
    local top = stats.topk(2, { neurons = 3 })
    raises(function() top:result() end, "TopK: no data added yet")
    raises(function() top:add(tensor.zeros({ 1, 2, 4 })) end, "TopK: values have 4 neurons, expected 3")
    raises(function() top:add(tensor.zeros({ 1, 2, 3 }), -1) end,
      "bad argument #2 to 'add' (document offset must be >= 0)")
    raises(function() top:add(tensor.zeros({ 3 })) end,
      "TopK: values must be [docs, pos, neurons] or [pos, neurons], got a 1-d tensor")
  end)
end)

describe("stats.histogram_stream", function()
  it("equals the batch histogram", function()
    local h = stats.histogram_stream(G["hist.edges"])
    h:add(G["hist.x"]:narrow(0, 0, 123)):add(G["hist.x"]:narrow(0, 123, 377))
    truthy(h:counts():equal(stats.histogram(G["hist.x"], G["hist.edges"])), "counts")
    close(h:density(), G["hist.density"], 1e-12, "density")
    same(h:edges():shape(), { 51 })
    truthy(tostring(h):find("HistogramStream(50 bins)", 1, true))
    raises(function() stats.histogram_stream({ 1 }) end,
      "histogram: edges must be a 1-D tensor of at least 2 values, got shape [1]")
    raises(function() stats.histogram_stream() end,
      "bad argument #1 to 'histogram_stream' (tensor expected, got no value)")
    raises(function() stats.histogram_stream({ 0, 1 }):counts() end, "HistogramStream: no data added yet")
  end)
end)

describe("stats.quantile_sketch", function()
  it("gives medians within its error bound", function()
    local x = tensor.randn({ 2000, 4 }, { seed = 9, dtype = "float64" })
    local s = stats.quantile_sketch({ bins = 512 })
    for i = 0, 1999, 250 do s:add(x:narrow(0, i, 250)) end
    eq(s:count(), 2000)
    local exact = x:sort(0)
    local median = (exact[999] + exact[1000]) / 2
    local err = (s:median() - median):abs()
    truthy((err - s:error_bound()):max():item() <= 1e-12, "median within bound")
    truthy(s:min():equal(x:min(0)), "min")
    truthy(s:max():equal(x:max(0)), "max")
    truthy(s:quantile(1):equal(x:max(0)), "q = 1 is the max")
    truthy((s:error_bound() - (x:max(0) - x:min(0)) * 4 / 512):max():item() <= 0, "bound <= 4 span / bins")
    truthy(tostring(s):find("QuantileSketch(512 bins, 2000 samples)", 1, true))
  end)

  it("rejects bad arguments", function()
    raises(function() stats.quantile_sketch({ bins = 7 }) end,
      "bad argument #1 to 'quantile_sketch' (option 'bins' must be even and at least 2)")
    raises(function() stats.quantile_sketch({ bin = 8 }) end,
      "bad argument #1 to 'quantile_sketch' (unknown option 'bin' (expected bins))")
    local s = stats.quantile_sketch()
    raises(function() s:median() end, "QuantileSketch: no data added yet")
    s:add(tensor.zeros({ 2, 3 }))
    raises(function() s:quantile(2) end, "bad argument #1 to 'quantile' (quantile must be in [0, 1])")
    raises(function() s:quantile() end, "bad argument #1 to 'quantile' (number expected, got no value)")
    raises(function() s:add(T({ { 0 / 0, 1, 2 } })) end, "QuantileSketch: batch contains nan or inf")
    raises(function() s:add(tensor.zeros({ 2, 4 })) end,
      "QuantileSketch: batch has 4 neurons, expected 3 (as in the first batch)")
  end)

  it("merges across a job as a no-op in one process", function()
    local x = tensor.randn({ 300, 3 }, { seed = 4, dtype = "float64" })
    local s = stats.quantile_sketch({ bins = 64 }):add(x)
    local median, bound = s:median(), s:error_bound()
    truthy(s:merge_across_job() == s)
    truthy(s:median():equal(median) and s:error_bound():equal(bound), "unchanged")
  end)
end)

describe("stats.covariance_stream", function()
  it("equals the covariance and PCA spectrum of all the data, fed in pieces", function()
    local x = tensor.randn({ 500, 6 }, { seed = 12, dtype = "float64" }) * T({ 1, 2, 3, 0.5, 1, 4 })
    local c, other = stats.covariance_stream(), stats.covariance_stream()
    for i = 0, 299, 60 do c:add(x:narrow(0, i, 60)) end
    other:add(x:narrow(0, 300, 200))
    c:merge(other):merge_across_job()  -- the job's merge: a no-op in one process
    eq(c:count(), 500)
    close(c:mean(), x:mean(0), 1e-12, "mean")
    local centred = x - x:mean(0)
    close(c:covariance(), centred:t():matmul(centred) / 499, 1e-12, "covariance")
    close(c:covariance(0), centred:t():matmul(centred) / 500, 1e-12, "covariance, ddof 0")
    close(c:explained_variance_ratio(), stats.pca(x).explained_variance_ratio, 1e-9, "ratio")
    truthy(tostring(c):find("CovarianceStream(6 neurons, 500 samples)", 1, true))
  end)

  it("rejects bad arguments", function()
    local c = stats.covariance_stream()
    raises(function() c:covariance() end, "CovarianceStream: covariance needs data; none added yet")
    c:add(tensor.zeros({ 1, 3 }))
    raises(function() c:covariance(-1) end, "bad argument #1 to 'covariance' (ddof must be >= 0)")
    raises(function() c:add(tensor.zeros({ 2, 4 })) end,
      "CovarianceStream: batch has 4 neurons, expected 3 (as in the first batch)")
    raises(function() c:merge({}) end, "CovarianceStream expected")
  end)
end)

spec.finish()
