"""A populated domain, as the issue that brought AD support measured one: 2,000 users in
``OU=Staff`` (every tenth one the manager of the nine after it; every 97th, from the fifth,
disabled), and a group ``Everyone`` in ``OU=Groups`` with the first 1,600 users as members.

Adding 2,000 users costs Samba about 12 s of CPU however they are sent, so the populated
domain is made once per test run, in the background (:func:`start_building`) while other tests
run: a copy of the provisioned template, filled offline by Samba's own Python
(:mod:`tests.ad.offline_add`) in one transaction, which then becomes a template itself: every
DC started from it is a copy with all of it, in under a second.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from tests.ad.ad_objects import DISABLED, ENABLED, GLOBAL_SECURITY_GROUP, user_dn
from tests.ad.samba import BASE_DN, REALM, SambaError, Template, copy_domain

USERS = 2000
GROUP_MEMBERS = 1600
STAFF_DN = f"OU=Staff,{BASE_DN}"
GROUPS_DN = f"OU=Groups,{BASE_DN}"
BIG_GROUP = "Everyone"
BIG_GROUP_DN = f"CN={BIG_GROUP},{GROUPS_DN}"
SYSTEM_PYTHON = "/usr/bin/python3"  # the one Samba's bindings are installed for


def user_name(n: int) -> str:
    return f"u{n:04d}"


def is_disabled(n: int) -> bool:
    return n % 97 == 5


def manager_of(n: int) -> int | None:
    return None if n % 10 == 0 else n - n % 10


def user_values(n: int) -> dict[str, str]:
    name = user_name(n)
    values = {
        "sAMAccountName": name,
        "userPrincipalName": f"{name}@{REALM.lower()}",
        "userAccountControl": str(DISABLED if is_disabled(n) else ENABLED),
        "givenName": f"Given{n}",
        "sn": f"Family{n}",
        "displayName": f"Given{n} Family{n}",
        "mail": f"{name}@example.org",
        "title": "Engineer" if n % 2 else "Analyst",
    }
    boss = manager_of(n)
    if boss is not None:
        values["manager"] = user_dn(user_name(boss), STAFF_DN)
    return values


def entries(users: int = USERS, members: int = GROUP_MEMBERS) -> list[dict[str, object]]:
    """The OUs, the users (managers before the users they manage) and the group."""
    made: list[dict[str, object]] = [
        {"dn": dn, "objectClass": ["top", "organizationalUnit"]} for dn in (STAFF_DN, GROUPS_DN)
    ]
    classes = ["top", "person", "organizationalPerson", "user"]
    made += [
        {"dn": user_dn(user_name(n), STAFF_DN), "objectClass": classes, **user_values(n)}
        for n in range(users)
    ]
    made.append(
        {
            "dn": BIG_GROUP_DN,
            "objectClass": ["top", "group"],
            "sAMAccountName": BIG_GROUP,
            "groupType": str(GLOBAL_SECURITY_GROUP),
            "member": [user_dn(user_name(n), STAFF_DN) for n in range(members)],
        }
    )
    return made


def populate(template: Template, directory: Path) -> Template:
    """A copy of the stopped ``template`` with :func:`entries` added, as a template."""
    copy_domain(template.directory, directory)
    listing = directory.parent / "entries.json"
    listing.write_text(json.dumps(entries()))
    script = Path(__file__).with_name("offline_add.py")
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", str(script), str(directory), str(listing)],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-4000:]
        raise SambaError(f"populating the test domain failed:\n{output}")
    return Template(directory, template.password)


class Background:
    """A value made once, on a thread of its own, started as early as wanted and waited for
    by whoever needs it first (or made on the spot if nobody started it)."""

    def __init__(self, make: Callable[[], Template]) -> None:
        self._make = make
        self._future: Future[Template] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._future is not None:
                return
            future: Future[Template] = Future()
            self._future = future

        def run() -> None:
            try:
                future.set_result(self._make())
            except BaseException as error:  # handed to whoever waits
                future.set_exception(error)

        threading.Thread(target=run, name="samba-template", daemon=True).start()

    def result(self) -> Template:
        self.start()
        assert self._future is not None
        return self._future.result()
