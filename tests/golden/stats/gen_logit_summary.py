#!/usr/bin/python3
# Makes logit_summary.json: statsmodels' Logit summary numbers (the table of lesson 12-17) for
# three columns of simulated data, to check stats.logit's llf, llnull, prsquared and llr_p
# besides its coefficients. Run with Debian's python3 (apt install python3-statsmodels).
import json

import numpy as np
import statsmodels
import statsmodels.api as sm

rng = np.random.default_rng(1217)
n = 30
y = np.array([0] * n + [1] * n, dtype=float)
# Column 0: the course's simulation (nouns ~ N(0,1) labelled 0, verbs ~ N(2,1) labelled 1);
# column 1: overlapping groups (N(0,1) vs N(0.3,1)); column 2: an unbalanced scale (x100).
cols = [
    np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n)]),
    np.concatenate([rng.normal(0, 1, n), rng.normal(0.3, 1, n)]),
    100 * np.concatenate([rng.normal(0, 1, n), rng.normal(0.8, 1, n)]),
]
out = {"statsmodels": statsmodels.__version__, "y": y.tolist(), "columns": []}
for x in cols:
    fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    ci = fit.conf_int()
    out["columns"].append({
        "x": x.tolist(), "params": fit.params.tolist(), "bse": fit.bse.tolist(),
        "z": fit.tvalues.tolist(), "pvalues": fit.pvalues.tolist(),
        "conf_low": ci[:, 0].tolist(), "conf_high": ci[:, 1].tolist(),
        "llf": fit.llf, "llnull": fit.llnull, "prsquared": fit.prsquared, "llr_pvalue": fit.llr_pvalue,
    })
with open("logit_summary.json", "w") as f:
    json.dump(out, f, indent=1)
