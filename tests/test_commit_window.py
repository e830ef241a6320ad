"""The group-commit window's policy: how many calls a write waits for."""

import pytest

from billing_service.storage.commit_window import MAX_EXPECTED, CommitWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def window(clock: FakeClock, patience: int = 3) -> CommitWindow:
    return CommitWindow(seconds=0.001, patience=patience, probe_interval=0.1, clock=clock)


def test_callers_one_at_a_time_are_decided_alone_but_for_a_probe_now_and_then() -> None:
    clock = FakeClock()
    policy = window(clock)
    assert policy.open() == MAX_EXPECTED  # the first write probes: the whole window
    policy.closed(1, filled=False)  # and only it came
    assert [policy.open() for _ in range(100)] == [None] * 100
    clock.now += 0.05
    assert policy.open() is None
    clock.now += 0.05
    assert policy.open() == MAX_EXPECTED  # probe again after probe_interval


def test_a_window_that_runs_out_of_time_expects_what_it_gathered_or_one_fewer() -> None:
    clock = FakeClock()
    policy = window(clock)
    policy.open()
    policy.closed(5, filled=False)  # a probe's count stands
    assert policy.expected == 5
    assert policy.open() == 5  # no probing while windows gather company
    policy.closed(3, filled=False)  # one thin window: one fewer, not three
    assert policy.open() == 4
    policy.closed(6, filled=False)  # more came than expected
    assert policy.open() == 6


def test_windows_that_fill_early_ask_for_one_more_after_patience() -> None:
    clock = FakeClock()
    policy = window(clock, patience=3)
    policy.open()
    policy.closed(4, filled=False)
    for _ in range(2):
        policy.closed(4, filled=True)
        assert policy.expected == 4
    policy.closed(4, filled=True)
    assert policy.expected == 5
    policy.closed(4, filled=False)  # the fifth did not come: back to four
    assert policy.expected == 4


def test_when_company_stops_coming_writes_are_decided_alone_again() -> None:
    clock = FakeClock()
    policy = window(clock)
    policy.open()
    policy.closed(4, filled=False)
    for expected in (3, 2, 1):
        policy.closed(1, filled=False)
        assert policy.expected == expected
    assert policy.open() is None  # decided alone
    clock.now += 0.2
    assert policy.open() == MAX_EXPECTED  # a probe, since the last one was long ago
    assert policy.open() is None


def test_expectations_stay_within_bounds() -> None:
    clock = FakeClock()
    policy = window(clock, patience=1)
    policy.closed(10_000, filled=False)
    assert policy.expected == MAX_EXPECTED
    policy.closed(MAX_EXPECTED, filled=True)
    assert policy.expected == MAX_EXPECTED
    policy = window(clock)
    policy.open()
    policy.closed(0, filled=False)  # a probe whose caller gave up meanwhile
    assert policy.expected == 1


def test_a_window_must_last_some_time() -> None:
    with pytest.raises(ValueError):
        CommitWindow(seconds=0)
