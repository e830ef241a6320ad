"""How long a batch waits for company: while waiting brings calls, and
longer while a longer wait brings several."""

from billing_service.storage.hot_path import (
    _LONG_QUIET_PASSES,
    _PROBE_SECONDS,
    _QUIET_PASSES,
    Patience,
    _company,
)
from billing_service.storage.rows import UsageKey


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_calls_that_come_one_at_a_time_wait_one_pass_but_for_a_probe_now_and_then() -> None:
    clock = FakeClock()
    patience = Patience(clock)
    assert patience.quiet_passes() == _QUIET_PASSES  # a probe: does waiting bring anyone?
    patience.waited(_QUIET_PASSES, late=0, after_short_wait=0)
    assert [patience.quiet_passes() for _ in range(100)] == [1] * 100
    clock.now += _PROBE_SECONDS
    assert patience.quiet_passes() == _QUIET_PASSES


def test_a_lone_caller_is_alone_but_when_a_probe_is_due() -> None:
    # alone(): the batcher's cue to let a lone check read in its own coroutine.
    clock = FakeClock()
    patience = Patience(clock)
    assert not patience.alone()  # the first probe is due
    assert patience.quiet_passes() == _QUIET_PASSES
    patience.waited(_QUIET_PASSES, late=0, after_short_wait=0)
    assert patience.alone()
    clock.now += _PROBE_SECONDS
    assert not patience.alone()  # the probe goes through the worker's wait
    patience.quiet_passes()
    patience.waited(_QUIET_PASSES, late=1, after_short_wait=0)  # and company came
    assert not patience.alone()


def test_batches_wait_while_a_wait_brings_a_call_often_enough() -> None:
    clock = FakeClock()
    patience = Patience(clock)
    patience.waited(_QUIET_PASSES, late=1, after_short_wait=0)  # a probe that paid
    assert patience.quiet_passes() == _LONG_QUIET_PASSES  # a probe of the long wait
    patience.waited(_LONG_QUIET_PASSES, late=1, after_short_wait=0)  # which did not pay
    for _ in range(200):  # one wait in four brings a call: keep waiting
        for late in (1, 0, 0, 0):
            assert patience.quiet_passes() == _QUIET_PASSES
            patience.waited(_QUIET_PASSES, late, after_short_wait=0)
    for _ in range(200):  # then nobody comes any more
        patience.waited(_QUIET_PASSES, late=0, after_short_wait=0)
    assert patience.quiet_passes() == _QUIET_PASSES  # the probe due at once
    patience.waited(_QUIET_PASSES, late=0, after_short_wait=0)
    assert patience.quiet_passes() == 1


def test_batches_wait_long_while_the_long_wait_brings_several_calls() -> None:
    clock = FakeClock()
    patience = Patience(clock)
    patience.waited(_QUIET_PASSES, late=1, after_short_wait=0)
    assert patience.quiet_passes() == _LONG_QUIET_PASSES  # the probe
    patience.waited(_LONG_QUIET_PASSES, late=5, after_short_wait=4)
    for _ in range(5):  # five more probes that bring four calls each
        assert patience.quiet_passes() == _QUIET_PASSES
        patience.waited(_QUIET_PASSES, late=1, after_short_wait=0)
        clock.now += _PROBE_SECONDS
        assert patience.quiet_passes() == _LONG_QUIET_PASSES
        patience.waited(_LONG_QUIET_PASSES, late=5, after_short_wait=4)
    assert [patience.quiet_passes() for _ in range(20)] == [_LONG_QUIET_PASSES] * 20
    # A few callers: every long wait brings the one or two that are left.
    long_waits = 0
    for _ in range(100):
        passes = patience.quiet_passes()
        long_waits += passes == _LONG_QUIET_PASSES
        patience.waited(passes, late=1, after_short_wait=1 if passes > _QUIET_PASSES else 0)
    assert long_waits < 20
    assert patience.quiet_passes() == _QUIET_PASSES
    clock.now += _PROBE_SECONDS
    assert patience.quiet_passes() == _LONG_QUIET_PASSES  # tried again now and then
    assert patience.quiet_passes() == _QUIET_PASSES


def test_checks_keep_a_batch_company_and_writes_only_on_a_counter_already_in_it() -> None:
    hot, other, third = (UsageKey(1, tenant, "seo") for tenant in ("hot", "other", "third"))
    assert _company([other, third], None) == 2  # checks: each saves a read
    counters = {hot}
    assert _company([hot, other], counters) == 1  # the write on `other` costs its own row
    assert _company([other, third, hot], counters) == 2  # `other` is in the batch now
    assert counters == {hot, other, third}
