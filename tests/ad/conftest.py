"""Real Active Directory domain controllers (Samba): one provisioned template per test run,
and a fresh DC, copied from it, for each test that asks for ``samba_dc`` (or one per module
with ``module_dc``). Without Samba these tests are skipped, and with ``CI=true`` they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ad.samba import SambaDc, Template, provision_template, require_samba


@pytest.fixture(scope="session")
def samba_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    require_samba()
    return provision_template(tmp_path_factory.mktemp("samba-template") / "domain")


@pytest.fixture
def make_samba_dc(samba_template: Template, tmp_path: Path) -> Iterator[Callable[..., SambaDc]]:
    """Start more DCs in this test, each a fresh copy of the template on its own address
    (keywords go to :class:`SambaDc`); whatever is still running is stopped afterwards."""
    started: list[SambaDc] = []

    def make(name: str, **options: Any) -> SambaDc:
        dc = SambaDc(tmp_path / name, template=samba_template, **options)
        started.append(dc)
        return dc.start()

    yield make
    for dc in started:
        dc.stop()


@pytest.fixture
def samba_dc(make_samba_dc: Callable[..., SambaDc]) -> SambaDc:
    """A fresh DC of its own for this test."""
    return make_samba_dc("dc")


@pytest.fixture(scope="module")
def module_dc(
    samba_template: Template, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SambaDc]:
    """One DC shared by a module's tests (which then use names of their own)."""
    with SambaDc(tmp_path_factory.mktemp("samba-dc") / "dc", template=samba_template) as dc:
        yield dc
