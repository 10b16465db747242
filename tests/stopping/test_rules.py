"""The stopping rules by their properties (random curves, many orders of arrival)."""

from __future__ import annotations

import math
import random

import pytest

from autotune.stopping import AshaRule, HyperbandRule, MedianRule, NoStopping, make_rule
from autotune.stopping._rules import rungs


def _interleaved(n_trials: int, steps: int, seed: int) -> list[tuple[int, int, float]]:
    """Reports of ``n_trials`` random decreasing curves, trials starting at random times."""
    rng = random.Random(seed)
    finals = [rng.uniform(0, 1) for _ in range(n_trials)]
    noise = [rng.uniform(0.5, 2.0) for _ in range(n_trials)]
    events = []
    for tid in range(n_trials):
        start = rng.uniform(0, n_trials)
        for step in range(1, steps + 1):
            events.append((start + step + rng.uniform(0, 0.5), tid, step, finals[tid] + noise[tid] / step))
    events.sort()
    return [(tid, step, value) for _, tid, step, value in events]


def _run(rule, events):
    """Feed reports; a stopped trial reports no more. Returns the decisions."""
    stopped = {}
    for tid, step, value in events:
        if tid in stopped:
            continue
        decision = rule.observe(tid, step, value)
        if decision is not None:
            stopped[tid] = decision
    return stopped


def test_rungs_are_min_step_times_powers_of_eta_below_max_step() -> None:
    assert rungs(1, 27, 3) == [1, 3, 9]
    assert rungs(2, 50, 4) == [2, 8, 32]
    assert rungs(5, 5, 3) == []


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("eta", [2, 3, 4])
def test_asha_never_stops_a_trial_in_the_best_1_over_eta_of_its_rung(seed: int, eta: int) -> None:
    rule = AshaRule(min_step=1, max_step=27, eta=eta)
    recorded: dict[int, list[float]] = {r: [] for r in rule.rung_steps}
    stopped = set()
    for tid, step, value in _interleaved(30, 27, seed):
        if tid in stopped:
            continue
        rung = next((r for r in rule.rung_steps if r <= step and tid not in rule.members(r)), None)
        decision = rule.observe(tid, step, value)
        if rung is not None:
            recorded[rung].append(value)
            ranked = sorted(recorded[rung])
            keep = max(1, math.floor(len(ranked) / eta))
            if value <= ranked[keep - 1]:
                assert decision is None  # in the best 1/eta at its rung (ties included)
            else:
                assert decision is not None and decision.trial_id == tid and decision.step == step
        else:
            assert decision is None  # only rungs decide
        if decision is not None:
            stopped.add(tid)
    assert stopped, "30 trials with eta >= 2 must lose some"
    assert len(stopped) < 30


def test_asha_decisions_are_deterministic_and_a_replay_decides_nothing_twice() -> None:
    events = _interleaved(20, 9, seed=3)
    first = _run(AshaRule(1, 9, 3), events)
    assert first == _run(AshaRule(1, 9, 3), events)
    # a resumed driver replays what was recorded up to the crash, then goes on live
    cut = len(events) // 2
    resumed = AshaRule(1, 9, 3)
    seen = events[:cut]
    stopped_before = {tid for tid, d in first.items()
                      if any(e[0] == tid and e[1] == d.step for e in seen)}
    replayed = [(tid, step, value) for tid, step, value in seen
                if not (tid in stopped_before and step > first[tid].step)]  # a stopped trial reports no more
    for tid, step, value in replayed:
        assert resumed.observe(tid, step, value, decided=True) is None
    later = _run(resumed, [e for e in events[cut:] if e[0] not in stopped_before])
    # every later decision is one the uninterrupted rule made too, at the same step
    for tid, decision in later.items():
        assert tid in first and first[tid].step == decision.step
    for tid, step, value in replayed:  # the replayed reports are never decided again
        assert resumed.observe(tid, step, value) is None


def test_asha_keeps_the_first_arrival_and_stops_a_clearly_worse_second() -> None:
    rule = AshaRule(1, 9, 3)
    assert rule.observe(0, 1, 0.5) is None
    assert rule.observe(1, 1, 0.9) is not None
    assert rule.observe(2, 1, 0.1) is None  # better than all: continues
    assert rule.observe(0, 2, 0.4) is None  # no rung at step 2


def test_asha_refuses_bad_settings() -> None:
    with pytest.raises(ValueError):
        AshaRule(min_step=5, max_step=5, eta=3)
    with pytest.raises(ValueError):
        AshaRule(min_step=1, max_step=9, eta=1)


@pytest.mark.parametrize("seed", range(5))
def test_median_never_stops_the_best_curve_and_stops_worse_ones(seed: int) -> None:
    rule = MedianRule(min_step=1, min_trials=3)
    rng = random.Random(seed)
    for tid in range(5):  # completed trials with curves 1 + tid + 1/step
        for step in range(1, 6):
            rule.observe(tid, step, 1.0 + tid + 1.0 / step)
        rule.completed(tid)
    best_curve = [rule.observe(100, step, 0.5 + rng.uniform(0, 0.1) / step) for step in range(1, 6)]
    assert best_curve == [None] * 5
    worse = rule.observe(101, 1, 10.0)
    assert worse is not None and worse.step == 1 and "median" in worse.reason


def test_median_waits_for_min_trials_completed_and_min_step() -> None:
    rule = MedianRule(min_step=2, min_trials=3)
    for tid in range(2):
        rule.observe(tid, 1, 0.0)
        rule.observe(tid, 2, 0.0)
        rule.completed(tid)
    assert rule.observe(9, 2, 5.0) is None  # 2 completed trials < 3
    rule.observe(2, 2, 0.0)
    rule.completed(2)
    assert rule.observe(9, 1, 50.0) is None  # before min_step
    assert rule.observe(9, 3, 5.0) is not None


def test_hyperband_brackets_start_later_and_are_fixed_by_trial_id() -> None:
    rule = HyperbandRule(min_step=1, max_step=27, eta=3)
    assert [rule.bracket(t) for t in range(6)] == [0, 1, 2, 0, 1, 2]
    # bracket 2 decides first at step 9: a bad trial there survives steps 1 and 3
    assert rule.observe(2, 1, 0.1) is None and rule.observe(5, 1, 100.0) is None
    assert rule.observe(5, 3, 100.0) is None
    assert rule.observe(2, 9, 0.1) is None
    assert rule.observe(5, 9, 100.0) is not None
    # bracket 0 decides at step 1
    assert rule.observe(0, 1, 0.1) is None and rule.observe(3, 1, 100.0) is not None


def test_make_rule_by_name() -> None:
    assert isinstance(make_rule("none"), NoStopping)
    assert make_rule("none").observe(0, 5, 1e9) is None
    assert isinstance(make_rule("asha", min_step=1, max_step=9, eta=3), AshaRule)
    with pytest.raises(ValueError, match="unknown stopping rule"):
        make_rule("nope")


def test_pareto_ranks_peel_fronts() -> None:
    from autotune.stopping import pareto_ranks

    pts = {0: (1.0, 4.0), 1: (2.0, 2.0), 2: (4.0, 1.0), 3: (3.0, 3.0), 4: (5.0, 5.0), 5: (2.0, 2.0)}
    assert pareto_ranks(pts) == {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 0}  # equal points share a front


def test_multi_objective_asha_never_stops_a_non_dominated_trial() -> None:
    import random

    from autotune.stopping import AshaRule, pareto_ranks

    rng = random.Random(0)
    for seed in range(5):
        rule = AshaRule(min_step=1, max_step=27, eta=3)
        seen: dict[int, dict[int, tuple[float, float]]] = {r: {} for r in rule.rung_steps}
        stopped = 0
        for tid in range(40):
            a = rng.random()
            for step in (1, 3, 9):
                value = (a + rng.random() / step, 1 - a + rng.random() / step)
                for r in rule.rung_steps:
                    if r <= step and tid not in seen[r]:
                        seen[r][tid] = value
                decision = rule.observe(tid, step, value)
                if decision is not None:
                    stopped += 1
                    rung = max(r for r in rule.rung_steps if r <= step)
                    ranks = pareto_ranks(seen[rung])
                    keep = max(1, len(seen[rung]) // 3)
                    assert ranks[tid] >= 1, (seed, tid)  # dominated at its rung
                    assert sum(1 for k in ranks.values() if k < ranks[tid]) >= keep  # outside the best 1/eta
                    assert isinstance(decision.value, tuple) and "dominated" in decision.reason
                    break
        assert stopped >= 5, seed  # it does stop trials


def test_median_rule_refuses_several_objectives() -> None:
    from autotune.stopping import MedianRule

    with pytest.raises(TypeError, match="asha or hyperband"):
        MedianRule().observe(0, 1, (1.0, 2.0))
