"""The job state machine as a table: (state, command) -> next state, or a refusal.

Every command the API or the embedding API accepts, and every verdict a cycle reaches
(``quarantine``, ``recover``), goes through :func:`transition`; nothing else writes
``status.code``. Absent pairs are refused with the reason from ``REFUSALS``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from engine.errors import TransitionError
from engine.model import ScheduleState, StatusCode


class Command(enum.Enum):
    START = "start"
    PAUSE = "pause"
    RESTART = "restart"
    DELETE = "delete"
    CONFIGURE = "configure"  # the template's required secrets became complete
    UNCONFIGURE = "unconfigure"  # a required secret was removed
    QUARANTINE = "quarantine"  # a cycle hit a quarantine threshold
    RECOVER = "recover"  # a quarantined job's cycle succeeded


class Deleted(enum.Enum):
    """The state after ``delete``: the job and all its state are gone."""

    DELETED = "Deleted"


S = StatusCode
C = Command
Next = StatusCode | Deleted

TRANSITIONS: Mapping[tuple[StatusCode, Command], Next] = {
    # start: resumes from where pause left off; lifts quarantine; watermarks kept
    (S.NOT_RUN, C.START): S.ACTIVE,
    (S.ACTIVE, C.START): S.ACTIVE,
    (S.PAUSED, C.START): S.ACTIVE,
    (S.QUARANTINE, C.START): S.ACTIVE,
    # pause: keeps everything; an in-flight cycle stops at its next page checkpoint
    (S.ACTIVE, C.PAUSE): S.PAUSED,
    (S.PAUSED, C.PAUSE): S.PAUSED,
    (S.QUARANTINE, C.PAUSE): S.PAUSED,
    # restart: resets what the criteria name, then runs
    (S.NOT_RUN, C.RESTART): S.ACTIVE,
    (S.ACTIVE, C.RESTART): S.ACTIVE,
    (S.PAUSED, C.RESTART): S.ACTIVE,
    (S.QUARANTINE, C.RESTART): S.ACTIVE,
    # delete: always possible
    **{(state, C.DELETE): Deleted.DELETED for state in StatusCode},
    # secrets
    (S.NOT_CONFIGURED, C.CONFIGURE): S.NOT_RUN,
    (S.NOT_RUN, C.CONFIGURE): S.NOT_RUN,
    (S.ACTIVE, C.CONFIGURE): S.ACTIVE,
    (S.PAUSED, C.CONFIGURE): S.PAUSED,
    (S.QUARANTINE, C.CONFIGURE): S.QUARANTINE,
    **{(state, C.UNCONFIGURE): S.NOT_CONFIGURED for state in StatusCode},
    # verdicts of a cycle
    (S.ACTIVE, C.QUARANTINE): S.QUARANTINE,
    (S.QUARANTINE, C.QUARANTINE): S.QUARANTINE,
    (S.QUARANTINE, C.RECOVER): S.ACTIVE,
    (S.ACTIVE, C.RECOVER): S.ACTIVE,
}

REFUSALS: Mapping[Command, str] = {
    C.START: "the job is not configured: its template's required secrets are missing",
    C.PAUSE: "only a started job can be paused",
    C.RESTART: "the job is not configured: its template's required secrets are missing",
    C.CONFIGURE: "unreachable",
    C.UNCONFIGURE: "unreachable",
    C.DELETE: "unreachable",
    C.QUARANTINE: "only a running job can be quarantined",
    C.RECOVER: "only a running or quarantined job can recover",
}

SCHEDULE_STATE: Mapping[StatusCode, ScheduleState] = {
    S.NOT_CONFIGURED: ScheduleState.DISABLED,
    S.NOT_RUN: ScheduleState.DISABLED,
    S.ACTIVE: ScheduleState.ACTIVE,
    S.QUARANTINE: ScheduleState.ACTIVE,
    S.PAUSED: ScheduleState.PAUSED,
}


def transition(state: StatusCode, command: Command) -> Next:
    """The state ``command`` leads to from ``state``; raises TransitionError when refused."""
    try:
        return TRANSITIONS[(state, command)]
    except KeyError:
        reason = REFUSALS[command]
        raise TransitionError(
            f"cannot {command.value} a job in state {state.value}: {reason}"
        ) from None


def is_runnable(state: StatusCode) -> bool:
    """Whether the runner may start a cycle for a job in this state."""
    return state in (S.ACTIVE, S.QUARANTINE)


def to_mermaid() -> str:
    """The table as a Mermaid state diagram, for the README (a test keeps the two in step)."""
    lines = ["stateDiagram-v2"]
    for (state, command), target in TRANSITIONS.items():
        if command in (C.DELETE, C.UNCONFIGURE) or state == target:
            continue
        lines.append(f"    {state.value} --> {target.value}: {command.value}")
    return "\n".join(lines)
