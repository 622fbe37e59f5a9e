"""A time budget for long runs: work stops cleanly at a unit boundary once the deadline has passed.

A paper-profile run (hours of training and certification on a CPU) is spread over work sessions:
``python -m georobust.book run ... --budget-minutes M`` sets the deadline (``$GEOROBUST_DEADLINE``,
seconds since the epoch, inherited by the notebook's kernel), and the long loops call
:func:`check` after each unit of work that is already saved — a training epoch written to its
checkpoint (:func:`georobust.core.train.train`), a group of examples flushed to a certification
log (:mod:`georobust.smoothing.logs`). Past the deadline :func:`check` raises
:class:`BudgetExhausted`; since everything done is on disk, running the same command again
continues where it stopped. With no deadline set, :func:`check` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import time

ENV = "GEOROBUST_DEADLINE"


class BudgetExhausted(RuntimeError):
    """The time budget of this run is used up; what was done is saved, and a rerun continues."""


def deadline() -> float | None:
    """The deadline (seconds since the epoch) from ``$GEOROBUST_DEADLINE``, or None."""
    value = os.environ.get(ENV)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"${ENV} must be a number of seconds since the epoch; got {value!r}") from None


def expired() -> bool:
    """Whether the deadline (if any) has passed."""
    end = deadline()
    return end is not None and time.time() >= end


def check(done: str) -> None:
    """Raise :class:`BudgetExhausted` if the deadline has passed; ``done`` says what was just saved."""
    end = deadline()
    if end is not None and time.time() >= end:
        raise BudgetExhausted(f"the time budget is used up after {done}; everything done so far is saved: "
                              "run the same command again to continue")


@contextlib.contextmanager
def budget(minutes: float | None):
    """Set the deadline to ``minutes`` from now while inside (None: no deadline); restored after.
    ``minutes = 0`` stops after the first saved unit of work."""
    if minutes is not None and not minutes >= 0:
        raise ValueError(f"budget minutes must be >= 0; got {minutes!r}")
    saved = os.environ.get(ENV)
    if minutes is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = repr(time.time() + 60.0 * minutes)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved
