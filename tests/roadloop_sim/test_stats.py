"""The paired bootstrap against known distributions: exact on constants, ~95 % coverage, noise straddles 0."""

from __future__ import annotations

import numpy as np
import pytest

from roadloop_sim.stats import PairingError, bootstrap_mean_ci, paired_differences


def test_identical_samples_give_an_interval_of_width_zero_at_the_mean() -> None:
    ci = bootstrap_mean_ci([4.2] * 32, seed=1)
    assert (ci.low, ci.mean, ci.high) == (4.2, 4.2, 4.2)
    assert (ci.n, ci.resamples, ci.confidence) == (32, 10_000, 0.95)


def test_the_same_inputs_give_the_same_interval_and_another_seed_almost_the_same() -> None:
    x = np.random.default_rng(0).normal(2.0, 5.0, 32)
    a, b, c = bootstrap_mean_ci(x, seed=7), bootstrap_mean_ci(x, seed=7), bootstrap_mean_ci(x, seed=8)
    assert a == b
    assert a.low != c.low and abs(a.low - c.low) < 0.1 and abs(a.high - c.high) < 0.1  # 10 000 resamples


def test_the_interval_covers_the_true_shift_about_95_percent_of_the_time() -> None:
    """400 seeded trials of 32 pairs: a shift of 3 under N(0, 10) noise on each episode's difference."""
    rng = np.random.default_rng(2024)
    trials, shift = 400, 3.0
    covered = widths = 0.0
    for t in range(trials):
        ci = bootstrap_mean_ci(rng.normal(shift, 10.0, 32), seed=t)
        covered += ci.low <= shift <= ci.high
        widths += ci.high - ci.low
    coverage = covered / trials
    # percentile bootstrap at n = 32: ~94 % (slightly narrow, like a z interval with the sample sd)
    assert 0.92 <= coverage <= 0.98, coverage
    assert widths / trials == pytest.approx(2 * 1.96 * 10.0 / np.sqrt(32), rel=0.08)


def test_a_tiny_noisy_difference_straddles_zero() -> None:
    diff = np.random.default_rng(5).normal(0.3, 8.0, 32)
    ci = bootstrap_mean_ci(diff, seed=0)
    assert ci.low < 0.0 < ci.high


def test_pairing_removes_what_the_episodes_share() -> None:
    """Episode difficulty varies a lot (sd 25), the candidate is 2 points better on each (sd 1): paired, that is
    clearly significant although the two sets of scores overlap almost completely."""
    rng = np.random.default_rng(3)
    hardness = rng.uniform(20, 100, 32)
    inc = [{"scenario": "highway_light", "seed": 7000 + i, "driving_score": h} for i, h in enumerate(hardness)]
    cand = [{**e, "driving_score": e["driving_score"] + 2.0 + rng.normal(0, 1.0)} for e in inc]
    keys, diff = paired_differences(list(reversed(cand)), inc)  # order does not matter: pairs by episode
    assert keys[0] == ("highway_light", 7000) and len(keys) == 32
    ci = bootstrap_mean_ci(diff, seed=0)
    assert 1.0 < ci.low < 2.0 < ci.high < 3.0
    unpaired = bootstrap_mean_ci([c["driving_score"] for c in cand], seed=0)
    assert unpaired.high - unpaired.low > 10 * (ci.high - ci.low)


@pytest.mark.parametrize(
    ("cand", "inc", "needle"),
    [
        ([("a", 1), ("a", 2)], [("a", 1), ("a", 3)], "only the candidate drove a seed 2, only the incumbent a seed 3"),
        ([("a", 1), ("a", 1)], [("a", 1)], "the candidate drove episode a seed 1 twice"),
        ([("a", 1)], [("b", 1)], "only the candidate drove a seed 1"),
    ],
)
def test_evaluations_of_different_episodes_cannot_be_paired(
    cand: list[tuple[str, int]], inc: list[tuple[str, int]], needle: str
) -> None:
    def rows(keys: list[tuple[str, int]]) -> list[dict[str, object]]:
        return [{"scenario": s, "seed": n, "driving_score": 50.0} for s, n in keys]

    with pytest.raises(PairingError, match=needle):
        paired_differences(rows(cand), rows(inc))


@pytest.mark.parametrize(
    ("samples", "kwargs", "needle"),
    [([], {}, "no samples"), ([1.0, float("nan")], {}, "finite"), ([1.0], {"confidence": 1.0}, "confidence"),
     ([1.0], {"resamples": 0}, "resamples")],
)  # fmt: skip
def test_bad_arguments_are_refused(samples: list[float], kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        bootstrap_mean_ci(samples, **kwargs)  # type: ignore[arg-type]


def test_ratio_ci_of_paired_samples() -> None:
    from roadloop_sim.stats import bootstrap_ratio_ci

    rng = np.random.default_rng(3)
    expert = rng.uniform(80.0, 100.0, 48)
    same = bootstrap_ratio_ci(expert, expert)
    assert same.mean == same.low == same.high == 1.0  # every resample pairs each episode with itself
    policy = 0.9 * expert + rng.normal(0.0, 5.0, 48)
    ci = bootstrap_ratio_ci(policy, expert, resamples=4000)
    assert ci.low < 0.9 < ci.high and ci.high - ci.low < 0.05
    assert ci.mean == pytest.approx(policy.mean() / expert.mean())
    with pytest.raises(ValueError, match="paired"):
        bootstrap_ratio_ci(policy[:3], expert)
