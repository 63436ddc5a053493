"""Mann–Whitney U against scipy (skipped without scipy) on samples from the fixtures."""

from __future__ import annotations

import itertools
import math

import pytest

from conftest import A, B, load
from ipcbench_report.stats import mann_whitney_u, min_p_value


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
    assert mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == (0.0, pytest.approx(0.1))
    assert mann_whitney_u([7.0, 7.0], [7.0, 7.0])[1] == 1.0


def test_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    a, b = _samples()
    pairs = list(itertools.combinations(a[:40], 2))
    pairs += list(zip(a, b))                                            # same cell
    pairs += [(x + y, [v * 1.01 for v in y] * 3) for x, y in zip(a, b)]  # 6 vs 9 values
    big = [v for s in a[:30] for v in s]
    pairs += [(big, big[::-1][:60] + [1.0]), (big[:12], big[20:31])]    # both > 8
    for x, y in pairs:
        ours = mann_whitney_u(x, y)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided")
        assert ours[0] == pytest.approx(ref.statistic, abs=1e-9)
        assert math.isclose(ours[1], ref.pvalue, rel_tol=1e-9, abs_tol=1e-12), (x, y)
