"""Two-sided Mann–Whitney U test over repetitions, and the Holm correction for testing
many cells at once.

The U statistic is scipy's (``scipy.stats.mannwhitneyu``, which Google Benchmark's
``compare.py`` calls). The p-value comes from the **exact** distribution of the rank sum
whenever the two samples hold at most 40 values together — conditional on the tied
values when there are ties (a permutation test on mid-ranks) — and from the normal
approximation with tie and continuity correction beyond that. Without ties this equals
scipy's ``method="exact"``. scipy's default switches to the normal approximation as soon
as both samples exceed 8 values or any value is tied; for 9 vs 9 repetitions that
approximation cannot go below p = 4.1e-4 where the exact test reaches 4.1e-5, which
matters once the p-values are corrected for the number of cells compared.

The exact test has a floor: the smallest two-sided p-value is ``2 / C(n1 + n2, n1)``
(3 vs 3 repetitions: 0.1, 5 vs 5: 0.0079, 9 vs 9: 4.1e-5).
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

EXACT_MAX_VALUES = 40   # both samples together, for the exact p-value


def _midranks(values: list[float]) -> list[float]:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@lru_cache(maxsize=256)
def _rank_sum_counts(ranks2: tuple[int, ...], n1: int) -> tuple[int, ...]:
    """Number of ways to pick n1 of the doubled mid-ranks ``ranks2`` with each total
    (index = total): the permutation distribution of the first sample's rank sum."""
    total = sum(ranks2)
    ways = [[0] * (total + 1) for _ in range(n1 + 1)]
    ways[0][0] = 1
    reach = 0                                      # largest total reachable so far
    for i, r in enumerate(ranks2):
        for k in range(min(i + 1, n1), 0, -1):
            src, dst = ways[k - 1], ways[k]
            for t in range(reach, -1, -1):
                if src[t]:
                    dst[t + r] += src[t]
        reach += r
    return tuple(ways[n1])


def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided p-value the exact test can give for these sample sizes."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def mann_whitney_u(x: list[float], y: list[float]) -> tuple[float, float]:
    """Two-sided test of ``x`` against ``y``: returns (U of x, p-value).

    Requires at least one value on each side.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    both = list(x) + list(y)
    ranks = _midranks(both)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    n = n1 + n2
    if n <= EXACT_MAX_VALUES:
        # Rank sums are symmetric about their mean even with ties, so the two-sided p
        # is twice the upper tail at the larger of U and n1*n2 - U (as scipy's exact).
        ranks2 = tuple(sorted(round(2 * r) for r in ranks))
        counts = _rank_sum_counts(ranks2, n1)
        at_least = round(2 * u) + n1 * (n1 + 1)      # doubled rank sum for U = u
        p = 2 * sum(counts[at_least:]) / math.comb(n, n1)
    else:
        tie_term = sum(t ** 3 - t for t in Counter(both).values())
        sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        if sigma == 0:
            return u1, 1.0
        z = (u - n1 * n2 / 2 - 0.5) / sigma
        p = math.erfc(z / math.sqrt(2))           # 2 * normal survival function
    return u1, min(p, 1.0)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given: the k-th smallest p is
    multiplied by (m - k + 1), and the results made non-decreasing. Rejecting where the
    adjusted p < alpha keeps the chance of any false rejection among the m tests at most
    alpha, however the tests depend on each other."""
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for k, i in enumerate(sorted(range(m), key=pvalues.__getitem__)):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted
