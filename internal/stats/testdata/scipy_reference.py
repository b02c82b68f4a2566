#!/usr/bin/python3
"""Prints the reference values of stats_test.go (Debian python3-scipy): /usr/bin/python3 scipy_reference.py"""
from scipy import stats
import numpy as np
rng = np.random.default_rng(0)
cases = []
s = np.round(rng.uniform(0,1,10), 6); b = np.round(s - 0.05 + rng.normal(0,0.1,10), 6)
cases.append((s,b))
s2 = np.round(rng.uniform(0,1,12), 6); b2 = np.round(rng.uniform(0,1,12), 6)
cases.append((s2,b2))
s3 = np.round(rng.uniform(0.9,1,5), 6); b3 = np.round(rng.uniform(0,0.1,5), 6)
cases.append((s3,b3))
for s,b in cases:
    pr = stats.ttest_rel(s, b, alternative='greater')
    w2 = stats.ttest_ind(s, b, equal_var=False)
    wg = stats.ttest_ind(s, b, equal_var=False, alternative='greater')
    print("{S: []float64{%s}, B: []float64{%s}, PairedT: %.15g, PairedP: %.15g, WelchT: %.15g, WelchP2: %.15g, WelchPGreater: %.15g}," % (
      ", ".join(repr(float(x)) for x in s), ", ".join(repr(float(x)) for x in b), pr.statistic, pr.pvalue, w2.statistic, w2.pvalue, wg.pvalue))
print("cdf", repr(stats.t.cdf(2.5, 9)), repr(stats.t.sf(30.0, 4)))
