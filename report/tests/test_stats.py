"""Mann–Whitney U against scipy (skipped without scipy) and against brute-force
enumeration of the permutations, on samples from the fixtures; Holm's adjustment."""

from __future__ import annotations

import itertools
import math

import pytest

from conftest import A, B, load
from ipcbench_report.stats import EXACT_MAX_VALUES, _midranks, holm, mann_whitney_u, min_p_value


def _samples() -> tuple[list[list[float]], list[list[float]]]:
    """Per-cell repetition values of the primary counter and of real_time, for each
    fixture, in the same cell order."""
    out = []
    for doc in (load(A), load(B)):
        cells: dict[str, list[float]] = {}
        for b in doc["benchmarks"]:
            if b["run_type"] == "iteration":
                key = next(k for k in ("rtt_p50_ns", "bytes_per_second", "ns_per_call")
                           if k in b)
                cells.setdefault(b["run_name"], []).append(b[key])
                cells.setdefault(b["run_name"] + " real_time", []).append(b["real_time"])
        out.append(cells)
    assert list(out[0]) == list(out[1])
    return list(out[0].values()), list(out[1].values())


def test_exact_floor_and_known_values():
    assert min_p_value(3, 3) == pytest.approx(0.1)
    assert min_p_value(5, 5) == pytest.approx(2 / 252)
    assert min_p_value(9, 9) == pytest.approx(2 / 48620)
    assert mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == (0.0, pytest.approx(0.1))
    assert mann_whitney_u([7.0, 7.0], [7.0, 7.0])[1] == 1.0
    # 9 vs 9 fully separated: exact, where the normal approximation would say 4.1e-4.
    x, y = [float(v) for v in range(9)], [float(v) for v in range(10, 19)]
    assert mann_whitney_u(x, y)[1] == pytest.approx(2 / 48620)


def _brute_force_p(x: list[float], y: list[float]) -> float:
    """Two-sided p by enumerating every split of the pooled mid-ranks."""
    ranks = _midranks(x + y)
    n, n1 = len(ranks), len(x)
    mean = n1 * (n + 1) / 2
    far = mean + abs(sum(ranks[:n1]) - mean) - 1e-9
    hits = sum(sum(ranks[i] for i in c) >= far
               for c in itertools.combinations(range(n), n1))
    return min(1.0, 2 * hits / math.comb(n, n1))


def test_ties_against_brute_force():
    a, b = _samples()
    pairs = [(x, y) for x, y in zip(a, b) if len(set(x + y)) < len(x + y)]
    pairs += [([1.0, 1.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 4.0]), ([5.0] * 4, [5.0, 6.0])]
    assert len(pairs) > 5, "premise: the fixtures hold tied repetitions"
    for x, y in pairs:
        assert math.isclose(mann_whitney_u(x, y)[1], _brute_force_p(x, y), rel_tol=1e-12)


def test_against_scipy():
    """Same U as scipy always; the same p as scipy's exact method without ties, and as
    its normal approximation beyond EXACT_MAX_VALUES values."""
    stats = pytest.importorskip("scipy.stats")
    a, b = _samples()
    pairs = list(itertools.combinations(a[:40], 2))
    pairs += list(zip(a, b))                                            # same cell
    pairs += [(x + y, [v * 1.01 for v in y] * 3) for x, y in zip(a, b)]  # 6 vs 9 values
    big = [v for s in a[:30] for v in s]
    pairs += [(big, big[::-1][:60] + [1.0]), (big[:12], big[20:31])]    # both > 8
    exact = approx = 0
    for x, y in pairs:
        ours = mann_whitney_u(x, y)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert ours[0] == pytest.approx(ref.statistic, abs=1e-9)
        if len(x) + len(y) > EXACT_MAX_VALUES:
            approx += 1
        elif len(set(x + y)) == len(x + y):
            exact += 1
            ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="exact")
        else:
            continue                     # ties: scipy has no exact p (brute force above)
        assert math.isclose(ours[1], ref.pvalue, rel_tol=1e-9, abs_tol=1e-12), (x, y)
    assert exact > 50 and approx >= 1


def test_holm():
    assert holm([]) == []
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
