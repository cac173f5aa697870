-- lesson: 12-18 Logistic regression vs. t-test
-- 51 simulated experiments whose group difference grows step by step: the logistic slope against
-- the t value, and the two tests' significance, side by side; ttest_rel as a one-sample test of
-- differences; and what perfect separation does to a logistic fit.
local lesson = require("lib.lesson")
local logit_summary = require("lib.logit_summary")

local L = lesson.start {
  id = "12-18",
  title = "Logistic regression vs. t-test",
  course = "part5_neurons_logregTtest (video 202), simulated data",
  model = false,
  options = {
    n = 30,              -- samples per group
    means = 51,          -- verb means, evenly from mean_from to mean_to
    mean_from = -2.0,
    mean_to = 3.0,
    separated_mean = 8.0,  -- the verb mean of the perfect-separation demonstration
    seed = 18,
  },
  summary = "For each verb mean μ, 30 nouns ~ N(0, 1) and 30 verbs ~ N(μ, 1). The logistic regression reads " ..
    "x = [verbs, nouns] with labels [0]*30 + [1]*30, so label 1 = noun and b1 > 0 when nouns are larger; the " ..
    "t-test is `ttest_rel(nouns, verbs)`, as in the course (a paired test of samples that are in fact " ..
    "independent). All 51 fits run as one batched `stats.logit` call, one column per experiment.",
}
local o = L.opts
if o.means < 2 or o.n < 3 then error("options: need --means >= 2 and --n >= 3", 0) end
report.set({ seed = o.seed })

local mu = tensor.linspace(o.mean_from, o.mean_to, o.means, { dtype = "float64" })    -- [means]
local nouns = tensor.randn({ o.n, o.means }, { dtype = "float64", seed = o.seed })    -- [n, means]
local verbs = tensor.randn({ o.n, o.means }, { dtype = "float64", seed = o.seed + 1 }) + mu
local x = tensor.cat({ verbs, nouns }, 0)                                              -- [2n, means]
local y = tensor.cat({ tensor.zeros({ o.n }, { dtype = "float64" }), tensor.ones({ o.n }, { dtype = "float64" }) })

local fit = stats.logit(x, y)
local tt = stats.ttest_rel(nouns, verbs)
local beta, p_logit = fit.coef[1], fit.p[1]
local fitted = fit.separated:eq(false)
local n_sep = fit.separated:sum():item()

-- 1. Slope against t ---------------------------------------------------------------------------
local b_fit, t_fit = beta:masked_select(fitted), tt.t:masked_select(fitted)
local r_bt = stats.pearson(b_fit:unsqueeze(1), t_fit)[0]:item()
local _, b_order = b_fit:sort()
local _, t_order = t_fit:sort()
local function ranks(order)
  local r = {}
  for i, idx in ipairs(order:tolist()) do r[idx + 1] = i end
  return tensor.new(r, { dtype = "float64" })
end
local rho = stats.pearson(ranks(b_order):unsqueeze(1), ranks(t_order))[0]:item()
report.text(("## 1. The logistic slope against the t value\n\n%d experiments, verb means %g to %g. %s The slope and " ..
  "t have Pearson r = %.3f and rank correlation %.3f over the fitted experiments.")
  :format(o.means, o.mean_from, o.mean_to,
    n_sep > 0 and ("%d of them are perfectly separated (no slope; left out of the plots)."):format(n_sep)
      or "None of them is perfectly separated.", r_bt, rho))
report.figure(figure.line {
  series = { { x = t_fit, y = b_fit, label = "experiment", marker = "circle" } },
  title = ("Logistic b1 vs paired t (r = %.3f)"):format(r_bt), xlabel = "t (ttest_rel(nouns, verbs))",
  ylabel = "b1 (label 1 = noun)", legend = "none",
}, { name = "beta_vs_t", caption = ("The slope and t rise together (rank correlation %.3f): both measure how far " ..
  "the nouns sit above the verbs, the t in units of its standard error, b1 in log-odds per unit of x."):format(rho) })

-- 2. Significance against significance ----------------------------------------------------------
local lp_logit = -(p_logit:masked_select(fitted):clamp(1e-300)):log()
local lp_t = -(tt.p:masked_select(fitted):clamp(1e-300)):log()
local line = -math.log(0.05)
local sig_logit, sig_t = lp_logit:gt(line), lp_t:gt(line)
local agree = sig_logit:eq(sig_t):sum():item()
local n_fit = b_fit:numel()
report.text(("## 2. Significance\n\nBoth tests call %d of %d experiments the same way at p < 0.05 (%d significant " ..
  "by both, %d by the t-test only, %d by the logistic regression only).")
  :format(agree, n_fit, (sig_logit:long() + sig_t:long()):eq(2):sum():item(),
    (sig_t:long() - sig_logit:long()):eq(1):sum():item(), (sig_logit:long() - sig_t:long()):eq(1):sum():item()))
local hi = math.max(lp_logit:max():item(), lp_t:max():item(), line) * 1.05
report.figure(figure.line {
  series = {
    { x = lp_t, y = lp_logit, label = "experiment", marker = "circle" },
    { x = { 0, hi }, y = { line, line }, label = "-ln(0.05)", color = "#808080", dashed = true },
    { x = { line, line }, y = { 0, hi }, color = "#808080", dashed = true },
  },
  title = "-ln p: logistic regression vs t-test", xlabel = "-ln p (t-test)", ylabel = "-ln p (logistic, Wald)",
  legend = "top left",
}, { name = "logp_vs_logp", caption = "Points in the upper-right and lower-left quadrants are experiments both tests " ..
  "judge alike; the dashed lines are p = 0.05." })
report.tensor("sweep", tensor.stack({ mu, beta, p_logit, tt.t, tt.p }), {
  caption = "rows: verb mean, logistic b1, logistic p, paired t, t-test p (nan b1/p where separated)" })

-- 3. ttest_rel is a one-sample test of the differences -------------------------------------------
local one = stats.ttest_1samp(nouns - verbs, 0)
local dt = (one.t - tt.t):abs():max():item()
local dp = (one.p - tt.p):abs():max():item()
report.text(("## 3. `ttest_rel(a, b)` = `ttest_1samp(a - b, 0)`\n\nOver the %d experiments the largest difference in " ..
  "t is %s and in p %s: the paired test is the one-sample test of the differences."):format(o.means,
  lesson.fmt(dt), lesson.fmt(dp)))
L:check("ttest_rel(a, b) equals ttest_1samp(a - b, 0)", dt < 1e-12 and dp < 1e-12, ("max |dt| %g, max |dp| %g"):format(dt, dp))

-- 4. Label order only flips signs ----------------------------------------------------------------
local flipped = stats.logit(x, 1 - y)
local flip_err = (flipped.coef[1] + fit.coef[1]):masked_select(fitted):abs():max():item()
local flip_p = (flipped.p[1] - fit.p[1]):masked_select(fitted):abs():max():item()
report.text(("## 4. Swapping the labels\n\nFitting with the labels swapped (label 1 = verb) negates every slope " ..
  "(largest |b1 + b1'| = %s) and leaves its p unchanged (largest difference %s)."):format(lesson.fmt(flip_err),
  lesson.fmt(flip_p)))
L:check("swapping the labels negates b1 and keeps p", flip_err < 1e-6 and flip_p < 1e-6)

-- 5. Perfect separation --------------------------------------------------------------------------
local far = tensor.randn({ o.n }, { dtype = "float64", seed = o.seed + 2 }) + o.separated_mean
local near = tensor.randn({ o.n }, { dtype = "float64", seed = o.seed + 3 })
local xs = tensor.cat({ far, near })
local separated_now = far:min():item() > near:max():item()
local sfit = stats.logit(xs, y)
report.text(("## 5. Perfect separation\n\nVerbs ~ N(%g, 1) against nouns ~ N(0, 1): the smallest verb (%.2f) is %s " ..
  "the largest noun (%.2f). When a threshold splits the classes, the likelihood keeps rising as |b1| grows, so " ..
  "no estimate exists (statsmodels stops with a warning, or prints the huge b1 of its last iteration). " ..
  "`stats.logit` flags the fit instead:"):format(o.separated_mean, far:min():item(),
  separated_now and "above" or "not above", near:max():item()))
local ss = logit_summary.report("Separated data", sfit, nil, { y_name = "label (1 = noun)", x_name = "value",
  observations = 2 * o.n })
L:check("perfectly separated data are flagged, with no slope printed", ss.separated == separated_now and
  (not ss.separated or ss.coef[2] ~= ss.coef[2]), ss.separated and "separated, b1 = nan" or "not separated")

-- Findings ----------------------------------------------------------------------------------------
L:finding("b1 against t", "tightly, monotonically related", ("rank correlation %.3f, r = %.3f"):format(rho, r_bt))
L:finding("significance of the two tests", "largely agrees", ("%d of %d experiments alike at p < 0.05"):format(agree, n_fit))
L:finding("perfect separation", "the logistic fit is unstable there", ss.separated and
  "flagged `separated`, no numbers" or "this draw was not separated")
L:finding("swapping the label order", "only flips signs", ("max |b1 + b1'| = %s"):format(lesson.fmt(flip_err)))
L:finish()
