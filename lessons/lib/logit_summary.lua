-- statsmodels' Logit summary for one fit of stats.logit: the header (observations, pseudo
-- R-squared, log-likelihoods, LLR p) and the coefficient table (coef, std err, z, P>|z|, 95%
-- interval), as report tables. A separated fit gets a flag row instead of numbers: there is no
-- maximum-likelihood estimate to print.
local lesson = require("lib.lesson")

local summary = {}

local Z975 = 1.959963984540054  -- the normal 97.5% quantile statsmodels' conf_int uses

-- One neuron's numbers: `fit` from stats.logit, `j` the 0-based neuron (nil when x was 1-D).
function summary.numbers(fit, j)
  local function at(t, row)
    local v = row and t[row] or t
    if j ~= nil then v = v[j] end
    return v:item()
  end
  local n = {
    separated = at(fit.separated), converged = at(fit.converged), iterations = at(fit.iterations),
    llf = at(fit.llf), llnull = fit.llnull, prsquared = at(fit.prsquared), llr_p = at(fit.llr_p),
    accuracy = at(fit.accuracy), coef = {}, se = {}, z = {}, p = {}, low = {}, high = {},
  }
  for row = 0, 1 do
    local c, s = at(fit.coef, row), at(fit.se, row)
    n.coef[row + 1], n.se[row + 1], n.p[row + 1] = c, s, at(fit.p, row)
    n.z[row + 1], n.low[row + 1], n.high[row + 1] = c / s, c - Z975 * s, c + Z975 * s
  end
  return n
end

-- Writes the two tables under `name`; opts: y_name, x_name, observations. Returns the numbers.
function summary.report(name, fit, j, opts)
  opts = opts or {}
  local n = summary.numbers(fit, j)
  local f = lesson.fmt
  report.table(name .. ": model", { columns = { "", "" }, rows = {
    { "Dep. Variable", opts.y_name or "y" },
    { "Model", "Logit (maximum likelihood, Newton)" },
    { "No. Observations", opts.observations or "n/a" },
    { "Df Model", 1 },
    { "converged", n.separated and "no estimate: the classes are perfectly separated" or tostring(n.converged) },
    { "Pseudo R-squ. (McFadden)", n.separated and "-" or f(n.prsquared, 4) },
    { "Log-Likelihood", n.separated and "-" or f(n.llf, 6) },
    { "LL-Null", f(n.llnull, 6) },
    { "LLR p-value", n.separated and "-" or f(n.llr_p, 4) },
  } })
  local rows = {}
  for i, label in ipairs({ "const", opts.x_name or "x1" }) do
    if n.separated then
      rows[#rows + 1] = { label, "separated", "-", "-", "-", "-", "-" }
    else
      rows[#rows + 1] = { label, f(n.coef[i], 4), f(n.se[i], 4), f(n.z[i], 4), f(n.p[i], 4), f(n.low[i], 4),
        f(n.high[i], 4) }
    end
  end
  report.table(name .. ": coefficients", { columns = { "", "coef", "std err", "z", "P>|z|", "[0.025", "0.975]" },
    rows = rows })
  return n
end

return summary
