"""The app lifecycle: which status may follow which.

    draft ──> generating ──> ready ──> deployed
                 ^   │         │          │
                 │   v         │          │
                 └─ error      └──────────┴──> generating (regenerate)

Every other move is refused with 409 and the allowed next states, so a client can
always tell what it may do instead.
"""

from __future__ import annotations

from stich.apps.models import AppStatus
from stich.errors import Conflict

TRANSITIONS: dict[AppStatus, tuple[AppStatus, ...]] = {
    AppStatus.DRAFT: (AppStatus.GENERATING,),
    AppStatus.GENERATING: (AppStatus.READY, AppStatus.ERROR),
    AppStatus.ERROR: (AppStatus.GENERATING,),
    AppStatus.READY: (AppStatus.DEPLOYED, AppStatus.GENERATING),
    AppStatus.DEPLOYED: (AppStatus.GENERATING,),
}


def allowed_next(current: AppStatus) -> list[str]:
    return [status.value for status in TRANSITIONS[current]]


def can_move(current: AppStatus, target: AppStatus) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: AppStatus) -> list[AppStatus]:
    """The statuses from which ``target`` may be reached."""
    return [source for source, targets in TRANSITIONS.items() if target in targets]


def refusal(current: AppStatus, target: AppStatus, *, app_id: str | None = None) -> Conflict:
    details: dict[str, object] = {
        "from": current.value,
        "to": target.value,
        "allowed": allowed_next(current),
    }
    if app_id is not None:
        details["app_id"] = app_id
    return Conflict(
        f"an app cannot move from {current.value} to {target.value}",
        code="invalid_transition",
        details=details,
    )


def check_move(current: AppStatus, target: AppStatus, *, app_id: str | None = None) -> None:
    if not can_move(current, target):
        raise refusal(current, target, app_id=app_id)
