#!/usr/bin/env python3
"""Writes analytics-core/tests/data/experiment_stats.json: the reference values that
analytics-core's experiment statistics must match to 1e-9 (tests/experiment_stats.rs).

Every value is computed with scipy; where statsmodels implements the same test, its answer is
checked against scipy's here (to 1e-12) so the table does not rest on one formula typed once.

- z-test: two-sided pooled two-proportion z-test (statsmodels `proportions_ztest`); `null` when a
  group is empty or the pooled variance is zero (no conversions at all, or all users converted).
- interval: Wald interval of treatment rate - control rate at `level`, unpooled standard error
  (statsmodels `confint_proportions_2indep(method="wald", compare="diff")`); `null` when a group
  is empty.
- chance_to_beat: P(X_t > X_c) for X ~ Beta(1 + conversions, 1 + non-conversions), by numerical
  integration (scipy.integrate.quad of f_t(p) * F_c(p)); `null` when a group is empty.
- sample ratio: chi-square goodness of fit of users per variant against the weights
  (scipy.stats.chisquare); `null` without users.

Usage: pip install scipy statsmodels; scripts/experiment-stats-reference.py
"""
import json
import math
import pathlib
import platform

import scipy
import statsmodels
from scipy import integrate, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

OUT = pathlib.Path(__file__).resolve().parent.parent / "analytics-core" / "tests" / "data" / "experiment_stats.json"

# (control users, control conversions, treatment users, treatment conversions, confidence level)
PROPORTION_CASES = [
    (1000, 200, 1000, 250, 0.95),  # textbook
    (2000, 200, 2010, 260, 0.95),
    (5000, 250, 5000, 250, 0.95),  # identical rates
    (100, 0, 100, 0, 0.95),  # no conversions at all: no variance
    (100, 0, 100, 5, 0.95),  # control never converts
    (100, 7, 100, 0, 0.90),  # treatment never converts
    (0, 0, 100, 10, 0.95),  # control empty
    (100, 10, 0, 0, 0.95),  # treatment empty
    (3, 1, 4, 3, 0.90),  # tiny samples
    (1, 0, 1, 1, 0.95),  # one user each
    (50, 50, 50, 49, 0.95),  # nearly everyone converts
    (50, 50, 50, 50, 0.95),  # everyone converts: no variance
    (12345, 678, 11111, 777, 0.80),
    (10000, 500, 10000, 800, 0.999),
    (1_000_000, 100_000, 1_000_000, 102_000, 0.99),  # large
    (200_000, 1_000, 200_000, 2_000, 0.95),  # z near 18: p-value near 1e-72
    (150_000, 40_000, 150_000, 40_500, 0.95),  # a long exact chance-to-beat sum
]

# (users per variant, weights)
SRM_CASES = [
    ([5000, 5000], [1, 1]),
    ([5000, 5200], [1, 1]),
    ([50_000, 51_500], [1, 1]),  # p-value near 2e-6: flagged
    ([100_000, 90_000], [1, 1]),  # p-value near 1e-117
    ([1000, 2000, 7000], [1, 2, 7]),
    ([1000, 2100, 6900], [1, 2, 7]),
    ([10, 0], [1, 1]),  # one variant empty
    ([1, 1], [0.5, 0.5]),
    ([0, 100], [1, 3]),
    ([333, 333, 334], [0.2, 0.3, 0.5]),
]


def close(a, b, tol=1e-12):
    return abs(a - b) <= tol * max(1.0, abs(b))


def z_test(n_c, x_c, n_t, x_t):
    if n_c == 0 or n_t == 0:
        return None
    pooled = (x_c + x_t) / (n_c + n_t)
    variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_t)
    if variance <= 0:
        return None
    z = (x_t / n_t - x_c / n_c) / math.sqrt(variance)
    p = min(1.0, 2 * stats.norm.sf(abs(z)))
    sm_z, sm_p = proportions_ztest([x_t, x_c], [n_t, n_c])
    assert close(z, sm_z) and close(p, sm_p), (z, sm_z, p, sm_p)
    return z, p


def interval(n_c, x_c, n_t, x_t, level):
    if n_c == 0 or n_t == 0:
        return None
    p_c, p_t = x_c / n_c, x_t / n_t
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    half = stats.norm.ppf(1 - (1 - level) / 2) * se
    lower, upper = p_t - p_c - half, p_t - p_c + half
    if 0 < x_c < n_c and 0 < x_t < n_t:
        sm = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=1 - level)
        assert close(lower, sm[0]) and close(upper, sm[1]), (lower, upper, sm)
    return [lower, upper]


def chance_to_beat(n_c, x_c, n_t, x_t):
    if n_c == 0 or n_t == 0:
        return None
    a_c, b_c = 1 + x_c, 1 + n_c - x_c
    a_t, b_t = 1 + x_t, 1 + n_t - x_t
    control, treatment = stats.beta(a_c, b_c), stats.beta(a_t, b_t)
    # Integrate where the treatment posterior has mass: within 40 standard deviations.
    lo = max(0.0, treatment.mean() - 40 * treatment.std())
    hi = min(1.0, treatment.mean() + 40 * treatment.std())
    value, error = integrate.quad(
        lambda p: treatment.pdf(p) * control.cdf(p), lo, hi, epsabs=1e-14, epsrel=1e-13, limit=1000,
        points=[treatment.mean(), control.mean()] if lo < control.mean() < hi else [treatment.mean()],
    )
    assert error < 1e-11, error
    return value


def srm(observed, weights):
    total = sum(observed)
    if total == 0:
        return None
    expected = [total * w / sum(weights) for w in weights]
    result = stats.chisquare(observed, f_exp=expected)
    return float(result.statistic), len(observed) - 1, float(result.pvalue)


def main():
    proportion_cases = []
    for n_c, x_c, n_t, x_t, level in PROPORTION_CASES:
        test = z_test(n_c, x_c, n_t, x_t)
        proportion_cases.append({
            "control": {"trials": n_c, "successes": x_c},
            "treatment": {"trials": n_t, "successes": x_t},
            "level": level,
            "z": test[0] if test else None,
            "p_value": test[1] if test else None,
            "interval": interval(n_c, x_c, n_t, x_t, level),
            "chance_to_beat": chance_to_beat(n_c, x_c, n_t, x_t),
        })
    srm_cases = []
    for observed, weights in SRM_CASES:
        result = srm(observed, weights)
        srm_cases.append({
            "observed": observed,
            "weights": [float(w) for w in weights],
            "statistic": result[0] if result else None,
            "degrees_of_freedom": result[1] if result else None,
            "p_value": result[2] if result else None,
        })
    table = {
        "produced_by": (
            f"scripts/experiment-stats-reference.py with scipy {scipy.__version__}, "
            f"statsmodels {statsmodels.__version__}, Python {platform.python_version()}"
        ),
        "proportion_cases": proportion_cases,
        "srm_cases": srm_cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
