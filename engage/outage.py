"""A dependency's outage as one actor sees it: logged when it starts and when it ends.

An actor that retries a store every second or two during an outage used to
log every failure: the mirror one warning per failed Redis write (288 in
8 s), the webhooks actor one every 0.5 s. :class:`Outage` turns that into two
lines, "down" with the first error and "back" with the outage's length and
the number of failures in between, and counts every failure in ``/metrics``
(``engage_dependency_failures_total``, and ``engage_dependency_down`` while
it lasts).
"""

from __future__ import annotations

import logging

import trio

from engage import metrics


class Outage:
    """Tracks whether ``what`` (for example ``"flush: postgres"``) is down.

    Args:
        what: names the actor and the dependency, in log lines and metrics.
        logger: where the two lines go.
    """

    __slots__ = ("what", "_log", "since", "failures")

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self._log = logger
        #: ``trio.current_time()`` of the first failure, None while all is well.
        self.since: float | None = None
        #: Failures since the outage began.
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> None:
        """A call failed: log it if it starts an outage; count it either way."""
        metrics.DEPENDENCY_FAILURES.labels(self.what).inc()
        self.failures += 1
        if self.since is None:
            self.since = trio.current_time()
            metrics.DEPENDENCY_DOWN.labels(self.what).set(1)
            self._log.warning("%s: down (%s); retrying quietly until it is back",
                              self.what, exc)

    def ok(self) -> None:
        """A call succeeded: log the end of an outage, if there was one."""
        if self.since is None:
            return
        lasted = trio.current_time() - self.since
        self._log.warning("%s: back after %.1f s (%d failed attempts)", self.what, lasted,
                          self.failures)
        metrics.DEPENDENCY_DOWN.labels(self.what).set(0)
        self.since = None
        self.failures = 0
