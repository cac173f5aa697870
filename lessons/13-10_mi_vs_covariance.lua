-- lesson: 13-10 MI vs covariance
-- Sweep the correlation of two simulated variables from -0.9 to +0.9: covariance follows the sign,
-- mutual information does not (it measures dependence, not direction), and the fast hand-coded
-- binned estimate sits above the truth by a near-constant offset.
local lesson = require("lib.lesson")

local L = lesson.start {
  id = "13-10",
  title = "MI vs covariance",
  course = "part5_layer_MIvsCovariance (video 216), simulated data",
  model = false,
  options = {
    n = 1000,        -- samples per data set
    steps = 19,      -- correlations from -0.9 to 0.9
    repetitions = 20,
    bins = 15,
    k = 3,
    seed = 10,
  },
  summary = "For each correlation ρ, `repetitions` data sets of x standard normal and y = ρx + √(1 − ρ²)ε: the " ..
    "sample covariance, the binned MI (`stats.mi_binned`, the course's hand-coded estimator) and the kNN MI " ..
    "(`stats.mi_knn`, scikit-learn's), averaged over the data sets, against the true MI −½ log₂(1 − ρ²) bits. " ..
    "Each estimator runs batched over all data sets of one ρ; their run times are measured side by side.",
}
local o = L.opts
report.text(("Sizes: %d samples per data set, %d data sets per correlation, %d correlations are this lesson's " ..
  "choice (--n, --repetitions, --steps)."):format(o.n, o.repetitions, o.steps))
local rhos = tensor.linspace(-0.9, 0.9, o.steps, { dtype = "float64" })
local x = tensor.randn({ o.n, o.repetitions }, { seed = o.seed, dtype = "float64" })
local noise = tensor.randn({ o.n, o.repetitions }, { seed = o.seed + 1, dtype = "float64" })
local cov, binned, knn, truth = {}, {}, {}, {}
local t_binned, t_knn = 0, 0
for i = 0, o.steps - 1 do
  local rho = rhos[i]:item()
  local y = x * rho + noise * math.sqrt(1 - rho * rho)
  cov[i + 1] = ((x - x:mean(0)) * (y - y:mean(0))):sum(0):div(o.n - 1):mean():item()
  local c0 = os.clock()
  binned[i + 1] = stats.mi_binned(x, y, { bins = o.bins }):mean():item()
  local c1 = os.clock()
  knn[i + 1] = stats.mi_knn(x, y, { k = o.k }):mean():item()
  local c2 = os.clock()
  t_binned, t_knn = t_binned + (c1 - c0), t_knn + (c2 - c1)
  truth[i + 1] = -0.5 * math.log(1 - rho * rho, 2)
end

report.figure(figure.line {
  x = rhos, markers = true,
  series = { { y = cov, label = "covariance" }, { y = binned, label = "MI, binned (bits)" },
    { y = knn, label = "MI, kNN (bits)" }, { y = truth, label = "true MI (bits)", dashed = true } },
  title = "Covariance is signed, mutual information is not", xlabel = "correlation ρ", ylabel = "value",
  legend = "top left",
}, { name = "mi_vs_covariance", caption = ("Means over %d data sets of %d samples per ρ."):format(o.repetitions, o.n) })
local offset = {}
for i = 1, o.steps do offset[i] = binned[i] - truth[i] end
local offset_t = tensor.new(offset, { dtype = "float64" })
report.figure(figure.line {
  x = rhos, markers = true, series = { { y = offset, label = "binned − true" } },
  title = "Offset of the binned estimate", xlabel = "correlation ρ", ylabel = "bits",
}, { name = "binned_offset", caption = ("From %s bits at ρ = %.2f to %s bits at ρ = %.2f."):format(
  lesson.fmt(offset_t:max():item()), rhos[offset_t:argmax():item()]:item(), lesson.fmt(offset_t:min():item()),
  rhos[offset_t:argmin():item()]:item()) })
local rows = {}
for i = 1, o.steps do rows[i] = { rhos[i - 1]:item(), cov[i], truth[i], binned[i], knn[i] } end
report.table("Per correlation", { columns = { "ρ", "covariance", "true MI", "binned MI", "kNN MI" }, rows = rows })
report.text(("Run time over all %d correlations (CPU seconds): binned %s, kNN %s (%s× slower)."):format(o.steps,
  lesson.fmt(t_binned), lesson.fmt(t_knn), lesson.fmt(t_knn / math.max(t_binned, 1e-9))))

-- U shape: MI at -ρ equals MI at +ρ (same data, y's sign flipped), covariance changes sign.
local asym = 0
for i = 1, o.steps // 2 do asym = math.max(asym, math.abs(knn[i] - knn[o.steps + 1 - i])) end
local mid = (o.steps + 1) // 2
L:finding("MI is U-shaped in the correlation, covariance is signed", "yes",
  ("covariance %s at ρ = −0.9, %s at +0.9; kNN MI %s and %s (largest |MI(−ρ) − MI(ρ)| %s)"):format(
    lesson.fmt(cov[1]), lesson.fmt(cov[o.steps]), lesson.fmt(knn[1]), lesson.fmt(knn[o.steps]), lesson.fmt(asym)))
L:finding("the hand-coded (binned) MI is biased but fast", "biased, fast",
  ("binned %s bits at ρ = %.2f (true %.3f), kNN %s; binned took %s s, kNN %s s"):format(lesson.fmt(binned[mid]),
    rhos[mid - 1]:item() + 0, math.abs(truth[mid]), lesson.fmt(knn[mid]), lesson.fmt(t_binned),
    lesson.fmt(t_knn)))

-- Checks: MI is symmetric in the sign of y; covariance is antisymmetric.
local y = x * 0.5 + noise * math.sqrt(0.75)
local plus, minus = stats.mi_binned(x, y, { bins = o.bins }), stats.mi_binned(x, -y, { bins = o.bins })
local sym = (plus - minus):abs():max():item()
L:check("flipping y's sign leaves the binned MI unchanged: the bins mirror (1e-9)", sym < 1e-9, lesson.fmt(sym))
local kplus, kminus = stats.mi_knn(x, y, { k = o.k }), stats.mi_knn(x, -y, { k = o.k })
local ksym = (kplus - kminus):abs():max():item()
L:check("flipping y's sign leaves the kNN MI unchanged (1e-9)", ksym < 1e-9, lesson.fmt(ksym))
L:check("covariance changes sign with ρ", cov[1] < 0 and cov[o.steps] > 0)
L:finish()
