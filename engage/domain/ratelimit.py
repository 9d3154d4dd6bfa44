"""Rate limits as plain code, with no I/O: the rate syntax, GCRA, and a
single-key limiter for limits that live in one process.

GCRA (the generic cell rate algorithm) keeps one number per key, the
*theoretical arrival time* (TAT): when the key would be idle again if every
request so far had arrived exactly one emission interval apart. A request of
cost ``c`` moves it ``c`` intervals later, and passes only if the TAT it
would leave is at most ``tolerance`` ahead of now. It is a leaky bucket of
``burst`` units drained one unit per interval, so unlike fixed windows there
is no window edge at which twice the allowance passes: in ANY stretch of time
of length L, at most ``burst + L / interval`` units pass. docs/rate-limits.md
has the whole story; engage/store/lua/_gcra.lua is the same arithmetic in
Redis, in milliseconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import trio

#: Slack, in seconds, in the comparison with the tolerance: sums of float
#: intervals drift by a few ulps, and a request arriving exactly on time must
#: not be refused because 30 * 0.1 came out as 3.0000000000000004. A
#: microsecond is far below anything a client can aim at, and matches the
#: resolution of Redis ``TIME`` used by the Lua twin.
EPSILON = 1e-6
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_WORDS = {"s": ("second", "s"), "m": ("minute", "min"), "h": ("hour", "h")}
_RATE_RE = re.compile(
    r"\s*(?P<count>\d+)\s*/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>[smh])"
    r"(?:\s+burst\s+(?P<burst>\d+))?\s*",
    re.IGNORECASE)
_SYNTAX = "'<count>/<period><s|m|h> [burst <n>]', e.g. '1/3s burst 5' or '5/1h'"


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` units per ``period`` seconds, up to ``burst`` at once from idle.

    Attributes:
        count: units that pass per period, sustained (>= 1).
        period: seconds (> 0).
        burst: units that may pass back to back after a quiet spell (>= 1).
    """

    count: int
    period: float
    burst: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1):
            raise ValueError(f"rate count must be a whole number >= 1, not {self.count!r}")
        if not (math.isfinite(self.period) and self.period > 0):
            raise ValueError(f"rate period must be > 0 seconds, not {self.period!r}")
        if not (isinstance(self.burst, int) and self.burst >= 1):
            raise ValueError(f"rate burst must be a whole number >= 1, not {self.burst!r}")

    @property
    def interval(self) -> float:
        """Seconds per unit at the sustained rate (the emission interval)."""
        return self.period / self.count

    @property
    def tolerance(self) -> float:
        """How far ahead of now, in seconds, a request may push the TAT.

        ``burst * interval``: from idle, ``burst`` unit requests pass back to
        back, then one per interval. (The GCRA literature's tolerance is one
        interval less because it compares the TAT before adding the request;
        comparing after makes a request's cost count, which matters for cost > 1.)
        """
        return self.period * self.burst / self.count  # one rounding, not two

    def __str__(self) -> str:
        return f"{self.count}/{_period_text(self.period)} burst {self.burst}"

    def describe(self, what: str) -> str:
        """A phrase for people: ``"at most 1 comment per 3 s (burst 5)"``.

        Args:
            what: the singular noun of what is counted ("comment", "request").
        """
        noun = what if self.count == 1 or what.endswith("s") else what + "s"
        amount, unit = _period_parts(self.period)
        word, short = _UNIT_WORDS[unit]
        per = f"per {word}" if amount == 1 else f"per {_number(amount)} {short}"
        return f"at most {self.count} {noun} {per} (burst {self.burst})"


def parse_rate(text: str) -> Rate:
    """Parse ``"<count>/<period><unit> [burst <n>]"``.

    Units are ``s``, ``m`` and ``h``; the period's number may be left out
    (``"10/s"``) or have decimals (``"1/0.5s"``). Without ``burst`` the burst
    is ``count``: a client quiet for a whole period may spend that period's
    allowance at once ("5/1h": five at once, then one every 12 minutes).

    Examples: ``"1/3s burst 5"``, ``"10/1s burst 30"``, ``"300/1m burst 600"``, ``"5/1h"``.

    Raises:
        ValueError: the text is not of that form, or a number is out of range;
            the message quotes the text and shows the expected form.
    """
    if not isinstance(text, str):
        raise ValueError(f"a rate must be a string like {_SYNTAX}, not {text!r}")
    m = _RATE_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"bad rate {text!r}: expected {_SYNTAX}")
    count = int(m["count"])
    period = float(m["amount"] or 1) * _UNIT_SECONDS[m["unit"].lower()]
    burst = int(m["burst"]) if m["burst"] is not None else count
    try:
        return Rate(count, period, burst)
    except ValueError as exc:
        raise ValueError(f"bad rate {text!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What GCRA decided about one request on one key.

    Attributes:
        allowed: the request passes.
        tat: the TAT to keep for the key (moved on if allowed, unchanged otherwise).
        retry_after: seconds until the same request would pass; 0.0 if allowed,
            ``math.inf`` if it never can (its cost is more than the burst).
        remaining: whole units that could still pass right now after this decision.
    """

    allowed: bool
    tat: float
    retry_after: float
    remaining: int


def gcra(tat: float | None, now: float, rate: Rate, cost: int = 1) -> Verdict:
    """Decide one request of ``cost`` units at ``now`` on a key whose TAT is ``tat``.

    Args:
        tat: the key's stored TAT, or None if it has none (idle). Any value
            not after ``now`` means idle too.
        now: the current time, seconds, on the clock ``tat`` was made with.
        rate: the limit.
        cost: units this request spends (>= 1).

    Returns:
        The verdict; store ``verdict.tat`` for the key (it can be forgotten once
        ``now`` passes it, which is what the Redis twin's expiry does).
    """
    interval = rate.interval
    base = now if tat is None or tat < now else tat
    new_tat = base + cost * interval
    over = new_tat - now - rate.tolerance
    if over > EPSILON:
        left = _remaining(rate, base - now)
        return Verdict(False, base, math.inf if cost > rate.burst else over, left)
    return Verdict(True, new_tat, 0.0, _remaining(rate, new_tat - now))


def _remaining(rate: Rate, ahead: float) -> int:
    return max(0, math.floor((rate.tolerance - ahead + EPSILON) / rate.interval))


class LocalLimiter:
    """GCRA on one key kept in memory, for limits that belong to one process
    (WebSocket frames on one connection). It is checked per frame, so it keeps
    two floats and calls nothing but the clock.

    Args:
        rate: the limit.
        clock: seconds on a monotonic clock; ``trio.current_time`` by default.
    """

    __slots__ = ("rate", "_interval", "_tolerance", "_clock", "_tat")

    def __init__(self, rate: Rate, clock: Callable[[], float] = trio.current_time) -> None:
        self.rate = rate
        self._interval = rate.interval
        self._tolerance = rate.tolerance
        self._clock = clock
        self._tat = -math.inf

    def check(self, cost: int = 1) -> float:
        """Spend ``cost`` units if they fit.

        Returns:
            0.0 if allowed (and spent), else seconds until they would fit
            (``math.inf`` if ``cost`` is more than the burst); nothing is spent.
        """
        now = self._clock()
        tat = self._tat if self._tat > now else now
        new_tat = tat + cost * self._interval
        over = new_tat - now - self._tolerance
        if over > EPSILON:
            return math.inf if cost > self.rate.burst else over
        self._tat = new_tat
        return 0.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One key an action is counted against.

    Attributes:
        name: the key's name under the deployment's ``rl:`` prefix, naming the
            action and the subject: ``"comment:u:alice"``, ``"ip:1.2.3.4"``.
        rate: the limit on that key.
        cost: units this action spends (a batch of n events costs n).
    """

    name: str
    rate: Rate
    cost: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.cost, int) and self.cost >= 1):
            raise ValueError(f"limit cost must be a whole number >= 1, not {self.cost!r}")

    @property
    def never(self) -> bool:
        """The cost is more than the burst: this action can never pass."""
        return self.cost > self.rate.burst


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for an action limited by several keys at once (all or nothing).

    Attributes:
        allowed: every key had room, and all were spent.
        retry_after: 0.0 if allowed, else seconds until the key that refused
            with the longest wait would have room (``math.inf``: never).
        limit: the limit that refused with that wait, None if allowed.
    """

    allowed: bool
    retry_after: float = 0.0
    limit: Limit | None = None


#: The decision for an action that passes.
ALLOWED = Decision(True)


def refusal_detail(decision: Decision, what: str) -> str:
    """Why an action was refused, for people:
    ``"at most 1 comment per 3 s (burst 5); retry in 2.1 s"``.

    Args:
        decision: a refusal (``allowed`` is False).
        what: the singular noun of what is counted ("comment", "event").
    """
    limit = decision.limit
    rule = limit.rate.describe(what) if limit is not None else "rate limit"
    if math.isinf(decision.retry_after):
        cost = limit.cost if limit is not None else "more"
        return f"{rule}; this request counts {cost}, more than can ever pass at once"
    return f"{rule}; retry in {_seconds_text(decision.retry_after)}"


def _seconds_text(seconds: float) -> str:
    # Rounded up, so a client that waits what it is told passes.
    if seconds < 10:
        return f"{math.ceil(seconds * 10) / 10:.1f} s"
    return f"{math.ceil(seconds)} s"


def _period_parts(period: float) -> tuple[float, str]:
    # The largest unit that makes a whole number: 3600 s reads "1h", 90 s "90s".
    for unit in ("h", "m"):
        amount = period / _UNIT_SECONDS[unit]
        if amount >= 1 and abs(amount - round(amount)) < 1e-9:
            return float(round(amount)), unit
    return period, "s"


def _period_text(period: float) -> str:
    amount, unit = _period_parts(period)
    return f"{_number(amount)}{unit}"


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"
