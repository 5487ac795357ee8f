"""The maintenance schedule runs in one process at a time (`serve --workers N`, several
workers): a process that finds another running a job group skips that turn."""

from __future__ import annotations

from contextlib import ExitStack

from stich.db import Database
from stich.db.single_runner import single_runner
from stich.worker import MaintenanceSchedule


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_lock_is_held_by_one_runner_at_a_time(db: Database) -> None:
    with single_runner(db, "maintenance:x") as first, single_runner(db, "maintenance:x") as second:
        assert (first, second) == (True, False)
    with single_runner(db, "maintenance:x") as again:
        assert again  # released on exit


def test_a_group_another_process_is_running_is_skipped(db: Database) -> None:
    clock = _Clock()
    schedule = MaintenanceSchedule(db, clock=clock)
    locks = [f"maintenance:{names[0]}" for names, _ in schedule.groups]

    with ExitStack() as others:  # "another process" holds every group
        assert all(others.enter_context(single_runner(db, name)) for name in locks)
        assert schedule.run_due() == []

    clock.now += 10**9  # next turn, nobody else running: every group runs
    assert len(schedule.run_due()) == len(locks)
