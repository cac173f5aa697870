"""References for tests/unit/stats/information_test.cpp: binned entropy and mutual information
as numpy's histogram2d gives them, the KSG estimator exactly as scikit-learn computes it (its
_compute_mi_cc, without mutual_info_regression's scaling and noise), and Kendall's tau-b with
scipy's asymptotic p-value. Run with Debian's python3-numpy, python3-scipy and python3-sklearn:

    /usr/bin/python3 tests/golden/stats/gen_information_goldens.py > tests/golden/stats/information.json

Inputs are written out in full so the C++ test needs nothing else."""
import json

import numpy as np
import scipy
import sklearn
from scipy import stats
from sklearn.feature_selection._mutual_info import _compute_mi_cc


def entropy_bits(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def mi_binned(x, y, bins):
    joint, _, _ = np.histogram2d(x, y, bins=bins)
    return entropy_bits(joint.sum(1)) + entropy_bits(joint.sum(0)) - entropy_bits(joint.ravel())


rng = np.random.default_rng(13)
n = 200
x = rng.normal(size=n)
noise = rng.normal(size=n)
cases = []
for rho in (0.0, 0.5, -0.9):
    y = rho * x + np.sqrt(1 - rho * rho) * noise
    cases.append({
        "rho": rho,
        "x": x.tolist(),
        "y": y.tolist(),
        "binned15": mi_binned(x, y, 15),
        "binned7": mi_binned(x, y, 7),
        "entropy15_x": entropy_bits(np.histogram(x, bins=15)[0]),
        "knn3_nats": float(_compute_mi_cc(x, y, 3)) if rho != 0.0 else None,
        "analytic_bits": float(-0.5 * np.log2(1 - rho * rho)),
    })

# _compute_mi_cc clips at 0; the unclipped value for the independent case, from its own formula.
def ksg_unclipped(x, y, k):
    from scipy.special import digamma
    from sklearn.neighbors import KDTree, NearestNeighbors
    xy = np.column_stack((x, y))
    radius = NearestNeighbors(metric="chebyshev", n_neighbors=k).fit(xy).kneighbors()[0]
    radius = np.nextafter(radius[:, -1], 0)
    nx = KDTree(x.reshape(-1, 1), metric="chebyshev").query_radius(x.reshape(-1, 1), radius, count_only=True) - 1.0
    ny = KDTree(y.reshape(-1, 1), metric="chebyshev").query_radius(y.reshape(-1, 1), radius, count_only=True) - 1.0
    return float(digamma(len(x)) + digamma(k) - np.mean(digamma(nx + 1)) - np.mean(digamma(ny + 1)))

for case in cases:
    case["knn3_unclipped_nats"] = ksg_unclipped(np.array(case["x"]), np.array(case["y"]), 3)
    case["knn5_unclipped_nats"] = ksg_unclipped(np.array(case["x"]), np.array(case["y"]), 5)

# Kendall's tau-b with ties in both, and without.
a = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9]
b = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4]
tied = stats.kendalltau(a, b, method="asymptotic")
c = x[:40].tolist()
d = (x[:40] * 0.3 + noise[:40]).tolist()
untied = stats.kendalltau(c, d, method="asymptotic")

print(json.dumps({
    "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__},
    "mi": cases,
    "kendall": [
        {"a": a, "b": b, "tau": float(tied.correlation), "p": float(tied.pvalue)},
        {"a": c, "b": d, "tau": float(untied.correlation), "p": float(untied.pvalue)},
    ],
}, indent=1))
