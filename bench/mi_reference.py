"""The course's way of computing mutual information, timed for bench/mi_bench.lua: numpy's
histogram2d per pair of dimensions (the hand-coded binned estimator) and scikit-learn's
mutual_info_regression per pair (the kNN estimator). Needs Debian's python3-numpy and
python3-sklearn. usage: mi_reference.py TOKENS UNITS KNN_SAMPLES KNN_PAIRS -> one JSON line."""
import json
import sys
import time

import numpy as np
from sklearn.feature_selection import mutual_info_regression


def entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return -(p * np.log2(p)).sum()


def binned_mi(x, y, bins=15):
    joint, _, _ = np.histogram2d(x, y, bins=bins)
    return entropy(joint.sum(1)) + entropy(joint.sum(0)) - entropy(joint.ravel())


tokens, units, knn_samples, knn_pairs = (int(a) for a in sys.argv[1:5])
rng = np.random.default_rng(0)
h = rng.normal(size=(tokens, units))
start = time.perf_counter()
m = np.zeros((units, units))
for i in range(units):
    for j in range(i + 1, units):
        m[i, j] = m[j, i] = binned_mi(h[:, i], h[:, j])
binned_s = time.perf_counter() - start

x = rng.normal(size=(knn_samples, knn_pairs))
y = 0.5 * x + rng.normal(size=(knn_samples, knn_pairs))
start = time.perf_counter()
for j in range(knn_pairs):
    mutual_info_regression(x[:, j:j + 1], y[:, j], n_neighbors=3, random_state=0)
knn_s = time.perf_counter() - start
print(json.dumps({"binned_s": binned_s, "knn_s": knn_s}))
