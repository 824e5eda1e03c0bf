"""A hybrid search's BM25 leg runs beside its dense leg, and never waits for a busy pool."""

from __future__ import annotations

import contextvars
import threading

import pytest

from lamina.data.concurrent import Leg

REQUEST = contextvars.ContextVar("REQUEST", default="none")


def test_a_leg_runs_in_another_thread_while_the_caller_works_and_sees_its_context() -> None:
    REQUEST.set("req-1")
    started = threading.Event()
    leg = Leg(lambda: (started.set(), threading.get_ident(), REQUEST.get())[1:])
    assert started.wait(5)  # it began before the caller asked for it
    thread, request = leg.result()
    assert thread != threading.get_ident() and request == "req-1"


def test_a_leg_the_busy_pool_has_not_started_runs_in_the_callers_thread() -> None:
    release = threading.Event()
    blockers = [Leg(lambda: release.wait(10)) for _ in range(8)]  # every pool thread taken
    try:
        leg = Leg(threading.get_ident)
        assert leg.result() == threading.get_ident()
    finally:
        release.set()
    assert all(b.result() for b in blockers)


def test_a_legs_error_reaches_the_caller() -> None:
    def fails() -> None:
        raise ValueError("the store is gone")

    with pytest.raises(ValueError, match="the store is gone"):
        Leg(fails).result()
