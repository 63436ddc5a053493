"""Two-sided Mann–Whitney U test, computed the way ``scipy.stats.mannwhitneyu`` does
by default (scipy 1.10, ``method="auto"``, ``use_continuity=True``), which is what
Google Benchmark's ``compare.py`` calls:

* **exact** null distribution of U when there are no ties and not both samples have
  more than 8 values;
* otherwise the **normal approximation** with tie correction and continuity correction.

With tiny samples the exact test has a floor: the smallest two-sided p-value is
``2 / C(n1 + n2, n1)`` (3 vs 3 repetitions: 0.1, 4 vs 4: 0.029, 5 vs 5: 0.0079).
"""

from __future__ import annotations

import math
from collections import Counter


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


def _u_counts(m: int, n: int) -> list[int]:
    """Number of orderings of m x-values and n y-values giving U = 0 .. m*n
    (recurrence f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k))."""
    # column[i] holds the counts for (i, j) with j the y-count reached so far.
    column = [[1] for _ in range(m + 1)]          # j = 0: only U = 0
    for j in range(1, n + 1):
        new = [[1]]                                # i = 0: only U = 0
        for i in range(1, m + 1):
            take_x = [0] * j + new[i - 1]          # x last: it beats all j y-values
            keep = column[i]                       # y last: adds nothing
            size = max(len(take_x), len(keep))
            new.append([(take_x[k] if k < len(take_x) else 0)
                        + (keep[k] if k < len(keep) else 0) for k in range(size)])
        column = new
    return column[m]


def min_p_value(n1: int, n2: int) -> float:
    """Smallest two-sided p-value the exact test can give for these sample sizes."""
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def mann_whitney_u(x: list[float], y: list[float]) -> tuple[float, float]:
    """Two-sided test of ``x`` against ``y``: returns (U of x, p-value).

    Requires at least one value on each side; matches scipy's default method choice.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    both = list(x) + list(y)
    ranks = _midranks(both)
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    ties = Counter(both)
    if (n1 > 8 and n2 > 8) or len(ties) < len(both):
        n = n1 + n2
        tie_term = sum(t ** 3 - t for t in ties.values())
        sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        if sigma == 0:
            return u1, 1.0
        z = (u - n1 * n2 / 2 - 0.5) / sigma
        p = math.erfc(z / math.sqrt(2))           # 2 * normal survival function
    else:
        counts = _u_counts(n1, n2)
        p = 2 * sum(counts[int(u):]) / math.comb(n1 + n2, n1)
    return u1, min(p, 1.0)
