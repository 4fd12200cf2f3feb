"""README's service walk-throughs run as written: every command of the shell blocks in "Run it
as a service", "Running the daemon" and "The command-line client", in order, in one shell,
against a real slapd (the LDAP source) and a real scim2-server (the target). A documented
command that fails fails the test, naming it.

Only what a reader would replace is replaced: the daemon's port (a free one instead of 8080;
``SYNCJOB_URL`` exported after a ``serve`` that uses the default), the state file (a
temporary one, so the example's config writes nothing into the checkout), the token
``serve`` printed, the LDAP and SCIM addresses and credentials, and ``.venv/bin/syncjob`` and
``python`` (this interpreter). A ``serve … &`` writes its output to a log, and the next command
waits until it answers ``/healthz``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import SystemClock
from tests.api.daemon import free_port
from tests.api.ldap_scim import source_tree
from tests.ldap.ldap_jobs import seed
from tests.ldap.slapd import ROOT_DN, Slapd
from tests.scim.server import ScimServer

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("Run it as a service", "Running the daemon", "The command-line client")
CLOCK = SystemClock()
FAILED = 97  # the walk's exit status when a README command fails


def readme_commands(text: str, sections: tuple[str, ...] = SECTIONS) -> Iterator[str]:
    """The commands of the ``sh`` blocks of each named section, in order (a line ending in a
    backslash continues on the next; blank and comment lines are left out)."""
    for name in sections:
        match = re.search(rf"^(#+) {re.escape(name)}\n", text, re.MULTILINE)
        assert match, f"README has no section {name!r}"
        level = len(match.group(1))
        rest = text[match.end() :]
        end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
        body = rest[: end.start()] if end else rest
        for block in re.findall(r"^```sh\n(.*?)^```", body, re.MULTILINE | re.DOTALL):
            command = ""
            for line in block.splitlines():
                if command:
                    command += "\n" + line
                elif line.strip() and not line.lstrip().startswith("#"):
                    command = line
                if command and not line.rstrip().endswith("\\"):
                    yield command
                    command = ""


class Walk:
    """Rewrites README commands for this machine's servers (see the module's docstring)."""

    def __init__(self, tmp: Path, values: dict[str, str]) -> None:
        self.tmp = tmp
        self.values = values
        self.serves = 0
        self.port = 0

    def rewrite(self, command: str) -> tuple[str, str]:
        """(the command to run, what to run after it)."""
        after = ""
        command = command.replace(".venv/bin/syncjob", "syncjob")
        command = re.sub(r"(?<![\w/])examples/", f"{ROOT}/examples/", command)
        if re.match(r"\s*(\w+=\S+\s+)*syncjob serve\b", command):
            self.serves += 1
            self.port = free_port()
            log = self.tmp / f"serve-{self.serves}.log"
            state = self.tmp / f"state-{self.serves}.db"
            extra = f" --port {self.port} --state {state} > {log} 2>&1"
            command = re.sub(r"\s*&(\s*#.*)?$", extra + " &", command, count=1)
            url = f"http://127.0.0.1:{self.port}"
            after = (
                f"export SYNCJOB_URL={url}\n"
                f"for _ in $(seq 200); do curl -sf {url}/healthz >/dev/null && break; "
                "sleep 0.1; done"
            )
        if self.port:
            command = command.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        if re.match(r"\s*export SYNCJOB_TOKEN=\.\.\.", command):
            log = self.tmp / f"serve-{self.serves}.log"
            printed = f"$(sed -n 's/^export SYNCJOB_TOKEN=//p' {log})"
            command = command.replace("SYNCJOB_TOKEN=...", f"SYNCJOB_TOKEN={printed}", 1)
        for key, value in self.values.items():
            command = re.sub(rf"(?<![\w-]){re.escape(key)}(=| )\S+",
                             lambda m, k=key, v=value: f"{k}{m.group(1)}{shlex.quote(v)}",
                             command)  # fmt: skip
        return command, after


def script(commands: list[str], walk: Walk) -> str:
    lines = [
        "set -o pipefail",
        f'syncjob() {{ {shlex.quote(sys.executable)} -m engine "$@"; }}',
        f'python() {{ {shlex.quote(sys.executable)} "$@"; }}',
        f"cd {shlex.quote(str(walk.tmp))}",
    ]
    for n, original in enumerate(commands, 1):
        command, after = walk.rewrite(original)
        first = original.splitlines()[0].replace("'", "")
        lines += [
            f"echo '>>> README command {n}: {first}'",
            command,
            f"rc=$?; if [ $rc -ne 0 ]; then echo 'README command {n} failed (exit '$rc'): "
            f"{first}' >&2; exit {FAILED}; fi",
        ]
        if after:
            lines.append(after)
    return "\n".join(lines) + "\n"


def stop_group(process: subprocess.Popen[str]) -> None:
    """Stop the walk's shell and every daemon it left running (its process group): SIGTERM,
    then SIGKILL for whatever is still there after 10 s; returns once all are gone."""
    deadline = CLOCK.monotonic() + 10
    sent = signal.SIGTERM
    while True:
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            break
        if CLOCK.monotonic() > deadline:
            sent = signal.SIGKILL
        CLOCK.sleep(0.1)
        process.poll()  # reap the shell, so its group can empty
    process.wait(10)


def test_readme_commands_parse() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = list(readme_commands(text))
    assert any(c.startswith(".venv/bin/syncjob serve") for c in commands)
    assert any("create_job.py" in c and c.count("\n") == 2 for c in commands)
    assert all(not c.lstrip().startswith("#") for c in commands)


def test_the_readme_service_sections_run_as_written(
    slapd_source: Slapd, make_scim_server: Callable[[str], ScimServer], tmp_path: Path
) -> None:
    missing = [tool for tool in ("bash", "curl", "sed") if shutil.which(tool) is None]
    if missing:  # the README's commands use them
        reason = f"the README walk needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    tree = source_tree(slapd_source, "readme")
    seed(tree, 5, groups=1, members=5)
    scim = make_scim_server("readme")
    values = {
        "SourceUrl": tree.source.url,
        "SourceUserName": ROOT_DN,
        "SourcePassword": tree.source.password.reveal(),
        "SourceBaseDn": tree.base,
        "BaseAddress": scim.url,
        "SecretToken": scim.token.reveal(),
        "--ldap-url": tree.source.url,
        "--ldap-bind-dn": ROOT_DN,
        "--ldap-base-dn": tree.base,
        "--scim-url": scim.url,
        "LDAP_PASSWORD": tree.source.password.reveal(),
        "SCIM_TOKEN": scim.token.reveal(),
    }
    commands = list(readme_commands((ROOT / "README.md").read_text(encoding="utf-8")))
    walk = Walk(tmp_path, values)
    (tmp_path / "walk.sh").write_text(script(commands, walk))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCJOB_")}
    began = CLOCK.monotonic()
    process = subprocess.Popen(
        ["bash", str(tmp_path / "walk.sh")],
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        stop_group(process)
    took = CLOCK.monotonic() - began
    for secret in (tree.source.password.reveal(), scim.token.reveal()):
        output = output.replace(secret, "*****")
    (tmp_path / "walk.log").write_text(output)  # what each command printed, for a reader
    assert process.returncode == 0, output[-6000:]
    assert output.count(">>> README command ") == len(commands)
    assert " failed (exit " not in output
    # about 25 s on an idle 2-core machine, most of it the ~30 interpreter starts; not
    # asserted, since a loaded machine doubles it
    print(f"the README walk took {took:.1f} s")


@pytest.fixture(autouse=True)
def _no_traceback_in_serve_logs(tmp_path: Path) -> Iterator[None]:
    yield
    for log in tmp_path.glob("serve-*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-3000:]
