-- lesson: 12-17 Classification via logistic regression: theory and code
-- Two simulated groups ("nouns" and "verbs"), one logistic regression label ~ 1 + value fitted by
-- maximum likelihood, statsmodels' summary table, and the fitted probabilities against the labels.
local lesson = require("lib.lesson")
local logit_summary = require("lib.logit_summary")

local L = lesson.start {
  id = "12-17",
  title = "Classification via logistic regression: theory and code",
  course = "part5_neurons_logisticRegression (video 201), simulated data",
  model = false,
  options = {
    n = 30,            -- samples per group (the course's 30)
    mean_nouns = 0.0,  -- "nouns" ~ N(mean_nouns, 1), label 0
    mean_verbs = 2.0,  -- "verbs" ~ N(mean_verbs, 1), label 1
    seed = 17,
  },
  summary = "The model is `log(p / (1 - p)) = b0 + b1 x`: the log-odds of label 1 are a straight line in x, and " ..
    "the sigmoid turns them into a probability. Log-odds, not probabilities, are modelled because they range " ..
    "over the whole real line, and log-likelihoods are summed because products of many probabilities underflow. " ..
    "`stats.logit` finds b0 and b1 by Newton steps, as statsmodels' `Logit(y, add_constant(x)).fit()`; the sign " ..
    "of b1 says which way the value pushes the label and its Wald z-test says whether it does at all.",
}
local o = L.opts
if o.n < 2 then error("option --n: expected at least 2 samples per group, got " .. o.n, 0) end
report.set({ seed = o.seed })

local nouns = tensor.randn({ o.n }, { dtype = "float64", seed = o.seed }) + o.mean_nouns
local verbs = tensor.randn({ o.n }, { dtype = "float64", seed = o.seed + 1 }) + o.mean_verbs
local x = tensor.cat({ nouns, verbs })                                                  -- [2n]
local y = tensor.cat({ tensor.zeros({ o.n }, { dtype = "float64" }), tensor.ones({ o.n }, { dtype = "float64" }) })

report.text(("## 1. The data\n\n%d \"nouns\" ~ N(%g, 1) labelled 0 and %d \"verbs\" ~ N(%g, 1) labelled 1 (seed %d). " ..
  "Sample means %.3f and %.3f."):format(o.n, o.mean_nouns, o.n, o.mean_verbs, o.seed, nouns:mean():item(),
  verbs:mean():item()))
report.figure(figure.strip {
  groups = { { values = nouns, label = "nouns (label 0)" }, { values = verbs, label = "verbs (label 1)" } },
  title = "Simulated values by group", ylabel = "value", seed = o.seed,
}, { name = "data", caption = "Each dot one sample, spread sideways only so that the dots do not overlap." })

-- The fit ---------------------------------------------------------------------------------------
local fit = stats.logit(x, y)
report.text("## 2. The fit\n\nstatsmodels' summary of `Logit(y, add_constant(x)).fit()`, computed by `stats.logit` " ..
  "(z = coef / std err; the interval is coef ± 1.96 std err).")
local s = logit_summary.report("Logit", fit, nil, { y_name = "label (1 = verb)", x_name = "value",
  observations = 2 * o.n })

if s.separated then
  -- No estimate exists; statsmodels would print its last, ever-growing iterate.
  report.text("The two groups are perfectly separated: one threshold on the value puts every noun on one side " ..
    "and every verb on the other, so the likelihood keeps growing as b1 grows and no maximum-likelihood estimate " ..
    "exists. `stats.logit` flags the fit (`separated = true`) instead of printing an arbitrary huge b1; the " ..
    "separating threshold itself classifies with accuracy " .. lesson.fmt(s.accuracy) .. ". Try a smaller " ..
    "`--mean-verbs`.")
  L:finding("b1 (slope)", "positive: verbs (label 1) have larger values", "no estimate: perfect separation")
  L:check("a separated fit has no numbers", s.coef[2] ~= s.coef[2] and s.llf ~= s.llf, "coef and llf are nan")
else
  local b0, b1 = s.coef[1], s.coef[2]
  local prob = (x * b1 + b0):sigmoid()                                                   -- [2n]
  local correct = prob:gt(0.5):eq(y:gt(0.5))
  local accuracy = correct:double():mean():item()
  report.text(("## 3. Predicted probabilities\n\nEach sample's fitted p(label 1) = sigmoid(%.3f + %.3f x). " ..
    "%d of %d samples fall on the right side of 0.5: accuracy %.1f%%, in-sample as in the course.")
    :format(b0, b1, correct:sum():item(), 2 * o.n, 100 * accuracy))
  local index = tensor.arange(2 * o.n):double()
  report.figure(figure.line {
    series = {
      { x = index:narrow(0, 0, o.n), y = prob:narrow(0, 0, o.n), label = "nouns (label 0)", marker = "circle" },
      { x = index:narrow(0, o.n, o.n), y = prob:narrow(0, o.n, o.n), label = "verbs (label 1)", marker = "square" },
      { x = { 0, 2 * o.n - 1 }, y = { 0.5, 0.5 }, label = "0.5", color = "#808080", dashed = true },
    },
    title = ("Predicted probability by sample (accuracy %.1f%%)"):format(100 * accuracy),
    xlabel = "sample", ylabel = "p(label 1)", ylim = { 0, 1 }, legend = "bottom right",
  }, { name = "predictions", caption = "Nouns should sit below the dashed 0.5 line and verbs above it; every " ..
    "point on the wrong side is a misclassified sample." })
  report.table("Per-item predictions", { columns = { "sample", "label", "value", "p(label 1)", "correct" },
    data = { sample = index:long(), label = y:long(), value = x, ["p(label 1)"] = prob, correct = correct:long() } })
  report.tensor("predictions", prob, { caption = "fitted p(label 1) per sample, nouns first" })

  -- The likelihoods recomputed from the fitted probabilities.
  local llf = (y * prob:log() + (1 - y) * (1 - prob):log()):sum():item()
  local llnull = 2 * o.n * math.log(0.5)  -- n ones and n zeros: the null model predicts 1/2
  L:check("log-likelihood recomputed from the fitted probabilities", math.abs(llf - s.llf) < 1e-9,
    ("%.10f vs %.10f"):format(llf, s.llf))
  L:check("LL-Null is that of the label share alone", math.abs(llnull - s.llnull) < 1e-9,
    ("%.10f vs %.10f"):format(llnull, s.llnull))
  L:check("pseudo R-squared = 1 - llf / llnull", math.abs(1 - s.llf / s.llnull - s.prsquared) < 1e-12)
  L:check("accuracy recomputed from the coefficients equals the fit's", math.abs(accuracy - s.accuracy) < 1e-12,
    ("%.4f vs %.4f"):format(accuracy, s.accuracy))
  L:check("the gradient of the log-likelihood is zero at the fit (it is the maximum)",
    math.abs((y - prob):sum():item()) < 1e-6 and math.abs(((y - prob) * x):sum():item()) < 1e-6)
  L:finding("b1 (slope)", "positive: verbs (label 1) have larger values (no number recorded)",
    ("%s, z = %s, p = %s"):format(lesson.fmt(b1), lesson.fmt(s.z[2]), lesson.fmt(s.p[2])))
  L:finding("accuracy", "most samples correctly classified (no number recorded)", ("%.1f%%"):format(100 * accuracy))
end
L:finish()
