"""The job state machine, every (state, command) pair."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from engine.errors import TransitionError
from engine.lifecycle import TRANSITIONS, Command, Deleted, to_mermaid, transition
from engine.model import StatusCode

S, C = StatusCode, Command
A, P, Q, NR, NC = S.ACTIVE, S.PAUSED, S.QUARANTINE, S.NOT_RUN, S.NOT_CONFIGURED
D = Deleted.DELETED
X = None  # refused

#            start pause restart delete configure unconfigure quarantine recover
EXPECTED = {
    NC: (X, X, X, D, NR, NC, X, X),
    NR: (A, X, A, D, NR, NC, X, X),
    A: (A, P, A, D, A, NC, Q, A),
    P: (A, P, A, D, P, NC, X, X),
    Q: (A, P, A, D, Q, NC, Q, A),
}
COMMANDS = (
    C.START,
    C.PAUSE,
    C.RESTART,
    C.DELETE,
    C.CONFIGURE,
    C.UNCONFIGURE,
    C.QUARANTINE,
    C.RECOVER,
)


@pytest.mark.parametrize(("state", "command"), list(itertools.product(StatusCode, Command)))
def test_every_pair(state: StatusCode, command: Command) -> None:
    """Each (state, command) pair leads where the table says, or is refused with a reason."""
    expected = EXPECTED[state][COMMANDS.index(command)]
    if expected is None:
        with pytest.raises(TransitionError, match=f"cannot {command.value}"):
            transition(state, command)
    else:
        assert expected == transition(state, command)


def test_expectations_cover_every_pair() -> None:
    """The expectation table above names every state and every command."""
    assert set(EXPECTED) == set(StatusCode)
    assert set(COMMANDS) == set(Command)
    allowed = {
        (s, c) for s in StatusCode for c in Command if EXPECTED[s][COMMANDS.index(c)] is not None
    }
    assert allowed == set(TRANSITIONS)


def test_mermaid_diagram_in_readme_matches_table() -> None:
    """The README's diagram is generated from the table and must not drift from it."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert to_mermaid() in readme
