"""Add entries to a *stopped* Samba domain directly in its database, in one transaction.

    /usr/bin/python3 -I tests/ad/offline_add.py DOMAIN_DIR ENTRIES.json

Run by the system's Python in isolated mode (``-I``: Samba's own Python bindings, which the
venv does not have, and not ``tests/ad/samba.py`` beside it), never imported by the tests.
Samba's add path is the same as over LDAP (every dsdb module runs), but one transaction instead
of one per entry, and no server: the populated test domain is made this way in the background
while other tests run. ``ENTRIES.json`` is a list of objects, each
a ``dn`` and attribute values (a string or a list of strings).
"""

import json
import sys


def main() -> int:
    from samba.auth import system_session  # type: ignore[import-not-found]  # noqa: PLC0415
    from samba.param import LoadParm  # type: ignore[import-not-found]  # noqa: PLC0415
    from samba.samdb import SamDB  # type: ignore[import-not-found]  # noqa: PLC0415

    directory, entries_file = sys.argv[1], sys.argv[2]
    settings = LoadParm()
    settings.load(f"{directory}/etc/smb.conf")
    database = SamDB(url=f"{directory}/private/sam.ldb", lp=settings, session_info=system_session())
    with open(entries_file, encoding="utf-8") as file:
        entries = json.load(file)
    database.transaction_start()
    try:
        for entry in entries:
            database.add(entry)
    except BaseException:
        database.transaction_cancel()
        raise
    database.transaction_commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
