-- lesson: 13-08 Mutual information: theory and code
-- Mutual information from histograms, MI = H(x) + H(y) - H(x, y), next to the k-nearest-neighbour
-- estimator scikit-learn uses, on simulated data whose true MI is known: the binned estimate is
-- biased (it finds information between independent variables), the kNN estimate is not.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "13-08",
  title = "Mutual information: theory and code",
  course = "part5_layer_mutualInformation (video 214), simulated data",
  model = false,
  options = {
    n = 300,            -- samples per simulated data set
    bins = 15,          -- the course's histogram2d bins
    k = 3,              -- neighbours of the kNN estimator (scikit-learn's default)
    repetitions = 100,  -- independent data sets per correlation
    seed = 8,
  },
  summary = "x is standard normal and y = ρx + √(1 − ρ²)ε, so the true mutual information is −½ log₂(1 − ρ²) " ..
    "bits (0 for independent variables). The binned estimate (`stats.mi_binned`) bins each variable into " ..
    "`bins` equal-width bins over its range, as `np.histogram2d`, and computes H(x) + H(y) − H(x, y) in bits; " ..
    "the kNN estimate (`stats.mi_knn`) is Kraskov–Stögbauer–Grassberger's, as scikit-learn's " ..
    "`mutual_info_regression` computes it (in bits here, and not clipped at 0; scikit-learn reports " ..
    "max(0, estimate) in nats). Every repetition draws a fresh data set; all repetitions of one correlation " ..
    "are estimated in one batched call.",
}
local o = L.opts
report.text(("Sizes: %d samples per data set and %d data sets per correlation are this lesson's choice " ..
  "(--n, --repetitions); the estimators' bias depends on the sample size, shown below."):format(o.n, o.repetitions))
local rhos = { 0.0, 0.3, 0.6, 0.9 }
local ln2 = math.log(2)

-- [n, repetitions] data sets for each correlation; the same x and noise for every rho.
local x = tensor.randn({ o.n, o.repetitions }, { seed = o.seed, dtype = "float64" })
local noise = tensor.randn({ o.n, o.repetitions }, { seed = o.seed + 1, dtype = "float64" })
local rows, estimates = {}, {}
for _, rho in ipairs(rhos) do
  local y = x * rho + noise * math.sqrt(1 - rho * rho)
  local binned = stats.mi_binned(x, y, { bins = o.bins })
  local knn = stats.mi_knn(x, y, { k = o.k })
  local analytic = rho == 0 and 0 or -0.5 * math.log(1 - rho * rho, 2)
  estimates[rho] = { binned = binned, knn = knn }
  rows[#rows + 1] = { rho, analytic, binned:mean():item(), binned:std():item(), knn:mean():item(), knn:std():item(),
    (knn * ln2):clamp(0, math.huge):mean():item() }
end
report.table(("Estimates over %d data sets of %d samples (bits)"):format(o.repetitions, o.n), {
  columns = { "ρ", "true MI", "binned: mean", "binned: sd", "kNN: mean", "kNN: sd", "scikit-learn's report (nats, ≥ 0)" },
  rows = rows,
})

local example_y = x:select(1, 0) * 0.6 + noise:select(1, 0) * 0.8
report.figure(figure.scatter {
  x = x:select(1, 0), y = example_y, alpha = 0.6,
  title = "One data set, ρ = 0.6", xlabel = "x", ylabel = "y",
}, { name = "example", caption = ("n = %d; true MI %.3f bits."):format(o.n, -0.5 * math.log(1 - 0.36, 2)) })
report.figure(figure.histogram {
  series = { { values = estimates[0.0].binned, label = "binned" }, { values = estimates[0.0].knn, label = "kNN" } },
  bins = 30, title = "MI estimates for independent x and y (true MI = 0)", xlabel = "bits", ylabel = "data sets",
}, { name = "independent", caption = ("Binned: %s to %s bits; kNN: mean %s, sd %s."):format(
  lesson.fmt(estimates[0.0].binned:min():item()), lesson.fmt(estimates[0.0].binned:max():item()),
  lesson.fmt(estimates[0.0].knn:mean():item()), lesson.fmt(estimates[0.0].knn:std():item())) })

-- The bias of the binned estimate against the sample size, next to its first-order expansion
-- (bins − 1)² / (2 N ln 2) (Miller's correction).
local sizes = { 100, 200, 400, 800, 1600, 3200 }
local measured, theory = {}, {}
for i, n in ipairs(sizes) do
  local a = tensor.randn({ n, 20 }, { seed = o.seed + 10 + i, dtype = "float64" })
  local b = tensor.randn({ n, 20 }, { seed = o.seed + 40 + i, dtype = "float64" })
  measured[i] = stats.mi_binned(a, b, { bins = o.bins }):mean():item()
  theory[i] = (o.bins - 1) ^ 2 / (2 * n * ln2)
end
report.figure(figure.line {
  x = sizes, logx = true, markers = true,
  series = { { y = measured, label = "binned estimate, independent data" },
    { y = theory, label = "(bins − 1)² / (2 N ln 2)", dashed = true } },
  title = "Bias of the binned estimate", xlabel = "samples", ylabel = "bits",
}, { name = "bias_vs_samples", caption = "Averaged over 20 data sets per size." })

local independent = rows[1]
L:finding("the binned estimate is biased for independent data", "≈ 0.4–0.5 bits",
  ("%s bits (sd %s) with %d samples and %d bins"):format(lesson.fmt(independent[3]), lesson.fmt(independent[4]),
    o.n, o.bins))
L:finding("the kNN (scikit-learn) estimate for independent data", "≈ 0",
  ("%s bits (sd %s); scikit-learn's clipped report %s nats"):format(lesson.fmt(independent[5]),
    lesson.fmt(independent[6]), lesson.fmt(independent[7])))

-- Checks: the binned estimate by hand from histograms; the kNN estimate near the truth.
local xs, ys = x:select(1, 0), example_y
local function edges(v) return tensor.linspace(v:min():item(), v:max():item(), o.bins + 1, { dtype = "float64" }) end
local function entropy(counts)
  local p = counts:double() / counts:sum():item()
  p = p:masked_select(p:gt(0))
  return -(p * p:log()):sum():item() / ln2
end
local ix = stats.histogram(xs, edges(xs))
local iy = stats.histogram(ys, edges(ys))
-- The joint histogram: each sample's x bin times bins plus its y bin (the last edge in the last bin).
local function bin_of(v)
  local lo, hi = v:min():item(), v:max():item()
  return ((v - lo) / (hi - lo) * o.bins):floor():clamp(0, o.bins - 1):long()
end
local joint = stats.histogram((bin_of(xs) * o.bins + bin_of(ys)):double(), tensor.arange(0, o.bins * o.bins + 1):double())
local by_hand = entropy(ix) + entropy(iy) - entropy(joint)
local from_stats = stats.mi_binned(xs, ys, { bins = o.bins }):item()
L:check("the binned MI equals H(x) + H(y) − H(x, y) from histograms computed here (1e-9)",
  math.abs(by_hand - from_stats) < 1e-9, ("%s vs %s"):format(lesson.fmt(by_hand, 6), lesson.fmt(from_stats, 6)))
local worst = 0
for i, rho in ipairs(rhos) do worst = math.max(worst, math.abs(rows[i][5] - rows[i][2])) end
L:check("the kNN estimate's mean is within 0.05 bits of the true MI at every ρ", worst < 0.05, lesson.fmt(worst))
L:check("the binned estimate exceeds the kNN estimate for independent data", independent[3] > independent[5] + 0.1)
L:finish()
