"""How long a batch of checks waits for company: while waiting brings calls."""

from billing_service.storage.hot_path import (
    _CHECK_PROBE_SECONDS,
    _CHECK_QUIET_PASSES,
    CheckPatience,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_checks_that_come_one_at_a_time_wait_one_pass_but_for_a_probe_now_and_then() -> None:
    clock = FakeClock()
    patience = CheckPatience(clock)
    assert patience.quiet_passes() == _CHECK_QUIET_PASSES  # a probe: does waiting bring anyone?
    patience.waited(brought_calls=False)
    assert [patience.quiet_passes() for _ in range(100)] == [1] * 100
    clock.now += _CHECK_PROBE_SECONDS
    assert patience.quiet_passes() == _CHECK_QUIET_PASSES


def test_checks_wait_while_a_wait_brings_a_call_often_enough() -> None:
    clock = FakeClock()
    patience = CheckPatience(clock)
    patience.waited(brought_calls=True)  # a probe that paid
    for _ in range(200):  # one wait in four brings a call: keep waiting
        for brought in (True, False, False, False):
            assert patience.quiet_passes() == _CHECK_QUIET_PASSES
            patience.waited(brought)
    for _ in range(200):  # then nobody comes any more
        patience.waited(brought_calls=False)
    assert patience.quiet_passes() == _CHECK_QUIET_PASSES  # the probe due at once
    patience.waited(brought_calls=False)
    assert patience.quiet_passes() == 1
