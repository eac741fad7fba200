"""The clocks answer "not yet" in one comparison: the limit named, and the moment it fires
(exactly at its deadline, not a moment before), are those of the full rule."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rawsse import FirstTokenTimeout, StallTimeout, Timeouts, TotalTimeout
from rawsse._errors import IdleTimeout, StreamTimeout
from rawsse._timeouts import Clocks

limits = st.none() | st.sampled_from([0.5, 1.0, 2.0, 3.0])
moments = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 6.0])


def oracle(
    clocks: Clocks, t: Timeouts, now: float, idle: bool
) -> tuple[type[StreamTimeout], float] | None:
    """The rule of ``Timeouts`` as a table: each limit runs from its own origin; first_token
    until the first content event, stall after it; the earliest deadline that has come
    wins (ties in the table's order)."""
    started = clocks.first_content is not None
    table: list[tuple[type[StreamTimeout], float | None, float]] = [
        (TotalTimeout, t.total, clocks.start),
        (IdleTimeout, t.idle if idle else None, clocks.read_start),
        (FirstTokenTimeout, None if started else t.first_token, clocks.attempt_start),
        (StallTimeout, t.stall if started else None, clocks.last_content),
    ]
    due = sorted(
        (origin + limit, order, kind, limit)
        for order, (kind, limit, origin) in enumerate(table)
        if limit is not None and origin + limit <= now
    )
    return None if not due else (due[0][2], due[0][3])


@given(
    limits, limits, limits, limits, moments, moments, st.none() | moments, moments, moments,
    st.booleans(),
)  # fmt: skip
def test_expired_names_the_earliest_limit_that_has_come(
    total: float | None,
    idle: float | None,
    first_token: float | None,
    stall: float | None,
    attempt: float,
    read: float,
    first: float | None,
    last: float,
    now: float,
    with_idle: bool,
) -> None:
    t = Timeouts(total=total, idle=idle, first_token=first_token, stall=stall)
    clocks = Clocks(t, 0.0)
    clocks.begin_attempt(attempt)
    clocks.read_start = read
    clocks.first_content = first
    clocks.last_content = last
    found = clocks.expired(now, idle=with_idle)
    assert found == oracle(clocks, t, now, with_idle)
    # The deadlines the shells wait for are the moments ``expired`` starts to answer.
    soonest = clocks.deadline() if with_idle else clocks.event_deadline()
    assert (found is None) == (soonest is None or now < soonest)
