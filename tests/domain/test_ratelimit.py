"""Rate limits as plain code: the rate syntax, GCRA (burst, steady rate, exact
waits, no window-edge bursts) and the in-process limiter."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.domain.ratelimit import (
    ALLOWED,
    EPSILON,
    Decision,
    Limit,
    LocalLimiter,
    Rate,
    gcra,
    parse_rate,
    refusal_detail,
)

# -- the rate syntax -----------------------------------------------------------------


@pytest.mark.parametrize("text, rate", [
    ("1/3s burst 5", Rate(1, 3.0, 5)),
    ("10/1s burst 30", Rate(10, 1.0, 30)),
    ("300/1m burst 600", Rate(300, 60.0, 600)),
    ("5/1h", Rate(5, 3600.0, 5)),           # burst defaults to the count
    ("10/s", Rate(10, 1.0, 10)),             # the period's number may be left out
    ("1/0.5s burst 2", Rate(1, 0.5, 2)),
    ("  20 / 2m   BURST 3 ", Rate(20, 120.0, 3)),
    ("50/1S burst 200", Rate(50, 1.0, 200)),
])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", [
    "", "1", "1/3", "1/3x", "1/3sec", "a/3s", "1/3s burst", "1/3s burst x", "1/3s burst 5 extra",
    "-1/3s", "1/-3s", "1.5/3s", "1/3s burst 2.5", "1/3s,burst 5",
])
def test_parse_rate_rejects_bad_syntax_and_shows_the_form(text):
    with pytest.raises(ValueError, match=r"bad rate .*expected '<count>/<period>"):
        parse_rate(text)


@pytest.mark.parametrize("text, why", [
    ("0/1s", "count must be a whole number >= 1"),
    ("1/0s", "period must be > 0"),
    ("1/0.0m", "period must be > 0"),
    ("1/1s burst 0", "burst must be a whole number >= 1"),
])
def test_parse_rate_rejects_out_of_range_numbers(text, why):
    with pytest.raises(ValueError, match=f"bad rate '{text}'.*{why}"):
        parse_rate(text)


def test_parse_rate_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a string"):
        parse_rate(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["1/3s burst 5", "300/1m burst 600", "5/1h burst 5",
                                  "1/0.5s burst 2", "7/90s burst 1"])
def test_str_round_trips(text):
    assert str(parse_rate(text)) == text
    assert parse_rate(str(parse_rate(text))) == parse_rate(text)


def test_interval_and_tolerance():
    rate = parse_rate("1/3s burst 5")
    assert rate.interval == 3.0 and rate.tolerance == 15.0
    rate = parse_rate("300/1m burst 600")
    assert rate.interval == pytest.approx(0.2) and rate.tolerance == pytest.approx(120.0)


def test_describe():
    assert parse_rate("1/3s burst 5").describe("comment") == "at most 1 comment per 3 s (burst 5)"
    assert parse_rate("10/1s burst 30").describe("like") == "at most 10 likes per second (burst 30)"
    assert parse_rate("300/1m").describe("request") == "at most 300 requests per minute (burst 300)"
    assert parse_rate("5/2h").describe("comments") == "at most 5 comments per 2 h (burst 5)"


# -- GCRA ------------------------------------------------------------------------------


def _run(rate, times, cost=1):
    """Feed requests at ``times`` through gcra; the verdicts in order."""
    tat, out = None, []
    for now in times:
        verdict = gcra(tat, now, rate, cost)
        tat = verdict.tat
        out.append(verdict)
    return out


def test_burst_from_idle_then_one_per_interval():
    rate = parse_rate("1/3s burst 5")
    verdicts = _run(rate, [100.0] * 6)
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0]
    assert verdicts[-1].retry_after == pytest.approx(3.0)
    tat = verdicts[-1].tat
    # from then on, one every 3 s: just before is refused, on time passes
    for k in range(1, 6):
        early = gcra(tat, 100.0 + 3 * k - 0.01, rate)
        assert not early.allowed and early.retry_after == pytest.approx(0.01)
        on_time = gcra(tat, 100.0 + 3 * k, rate)
        assert on_time.allowed and on_time.remaining == 0
        tat = on_time.tat


def test_retry_after_is_exact():
    rate = parse_rate("10/1s burst 30")
    tat = None
    for _ in range(30):
        verdict = gcra(tat, 50.0, rate)
        assert verdict.allowed
        tat = verdict.tat
    for elapsed in (0.0, 0.03, 0.07, 0.099):
        refused = gcra(tat, 50.0 + elapsed, rate)
        assert not refused.allowed and refused.tat == tat
        assert refused.retry_after == pytest.approx(0.1 - elapsed, abs=1e-9)
        # waiting exactly that long passes
        assert gcra(tat, 50.0 + elapsed + refused.retry_after, rate).allowed


def test_idle_time_refills_up_to_the_burst_only():
    rate = parse_rate("1/1s burst 3")
    verdicts = _run(rate, [0.0, 0.0, 0.0, 1000.0, 1000.0, 1000.0, 1000.0])
    assert [v.allowed for v in verdicts] == [True, True, True, True, True, True, False]


def test_cost_counts_units():
    rate = parse_rate("10/1s burst 30")
    first = gcra(None, 0.0, rate, cost=25)
    assert first.allowed and first.remaining == 5
    second = gcra(first.tat, 0.0, rate, cost=10)
    assert not second.allowed and second.remaining == 5
    assert second.retry_after == pytest.approx(0.5)


def test_cost_above_burst_never_passes():
    rate = parse_rate("10/1s burst 30")
    verdict = gcra(None, 0.0, rate, cost=31)
    assert not verdict.allowed and math.isinf(verdict.retry_after)
    assert verdict.remaining == 30


def test_fixed_window_edge_burst_does_not_happen():
    # A fixed 1 s window would pass 10 at 0.999 and 10 more at 1.0.
    rate = parse_rate("10/1s burst 10")
    verdicts = _run(rate, [0.999] * 10 + [1.0] * 10)
    assert sum(v.allowed for v in verdicts) == 10


_rates = st.builds(Rate, st.integers(1, 20), st.sampled_from([0.1, 1.0, 3.0, 60.0]),
                   st.integers(1, 20))


#: Gaps between requests, in intervals: runs of steady fractions are what
#: expose a limiter that forgives a little debt per request.
_gaps = st.one_of(
    st.lists(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5]), st.floats(0, 3)),
             min_size=1, max_size=80),
    st.builds(lambda gap, n: [gap] * n, st.sampled_from([0.5, 0.75, 0.9, 0.99]),
              st.integers(10, 80)),
)


@given(rate=_rates, gaps=_gaps, costs=st.lists(st.integers(1, 4), min_size=80, max_size=80))
def test_no_stretch_of_time_passes_more_than_burst_plus_rate(rate, gaps, costs):
    """In ANY stretch of length L, at most burst + L / interval units pass."""
    now, tat, passed = 1000.0, None, []
    for gap, cost in zip(gaps, costs):
        now += gap * rate.interval
        verdict = gcra(tat, now, rate, cost)
        tat = verdict.tat
        if verdict.allowed:
            passed.append((now, cost))
    # the fullest stretch starts and ends on passed requests
    for i in range(len(passed)):
        units = 0
        for j in range(i, len(passed)):
            units += passed[j][1]
            length = passed[j][0] - passed[i][0]
            assert units <= rate.burst + (length + EPSILON) / rate.interval + 1e-9


@given(rate=_rates, gaps=st.lists(st.floats(0, 2), min_size=1, max_size=60))
def test_steady_clients_at_the_rate_are_never_refused(rate, gaps):
    """Requests no closer than one interval always pass, whatever the burst."""
    now, tat = 0.0, None
    for gap in gaps:
        now += (1 + gap) * rate.interval
        verdict = gcra(tat, now, rate)
        assert verdict.allowed
        tat = verdict.tat


# -- the in-process limiter ------------------------------------------------------------


class FakeClock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def test_local_limiter_burst_then_rate():
    clock = FakeClock(5.0)
    limiter = LocalLimiter(parse_rate("50/1s burst 200"), clock)
    assert all(limiter.check() == 0.0 for _ in range(200))
    assert limiter.check() == pytest.approx(0.02)
    clock.now += 0.02
    assert limiter.check() == 0.0
    assert limiter.check() == pytest.approx(0.02)
    assert math.isinf(limiter.check(cost=201))


@given(rate=_rates,
       steps=st.lists(st.tuples(st.floats(0, 2), st.integers(1, 3)), max_size=60))
def test_local_limiter_agrees_with_gcra(rate, steps):
    clock = FakeClock(10.0)
    limiter = LocalLimiter(rate, clock)
    tat = None
    for gap, cost in steps:
        clock.now += gap * rate.interval
        verdict = gcra(tat, clock.now, rate, cost)
        tat = verdict.tat
        assert limiter.check(cost) == verdict.retry_after


async def test_local_limiter_uses_trio_time_by_default():
    limiter = LocalLimiter(parse_rate("1/1h burst 1"))
    assert limiter.check() == 0.0
    assert limiter.check() == pytest.approx(3600.0, abs=1.0)


# -- limits and refusals ---------------------------------------------------------------


def test_limit_validates_cost():
    rate = parse_rate("1/1s")
    assert not Limit("x", rate).never
    assert Limit("x", rate, cost=2).never
    with pytest.raises(ValueError, match="cost"):
        Limit("x", rate, cost=0)


def test_refusal_detail():
    limit = Limit("comment:u:alice", parse_rate("1/3s burst 5"))
    assert refusal_detail(Decision(False, 2.01, limit), "comment") == (
        "at most 1 comment per 3 s (burst 5); retry in 2.1 s")
    assert refusal_detail(Decision(False, 700.2, limit), "comment").endswith("retry in 701 s")
    big = Limit("events:ip:1.2.3.4", parse_rate("20000/1s burst 40000"), cost=50000)
    assert refusal_detail(Decision(False, math.inf, big), "event") == (
        "at most 20000 events per second (burst 40000); this request counts 50000, "
        "more than can ever pass at once")
    assert ALLOWED.allowed and ALLOWED.retry_after == 0.0
