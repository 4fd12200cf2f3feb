"""Real Active Directory domain controllers (Samba): one provisioned template per test run,
and a fresh DC, copied from it, for each test that asks for ``samba_dc`` (or one per module
with ``module_dc``); ``populated_dc`` holds 2,000 users and a 1,600-member group
(:mod:`tests.ad.populated`). Without Samba these tests are skipped, and with ``CI=true`` they
fail.

The templates are made on a background thread as soon as the run is collected and AD tests
are in it, and the AD tests run last, so their setup costs the run little wall time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ad.populated import Background, populate
from tests.ad.samba import (
    SambaDc,
    Template,
    missing_components,
    provision_template,
    require_samba,
)

_ROOT = Path(tempfile.mkdtemp(prefix="syncjob-samba-"))
_template = Background(lambda: provision_template(_ROOT / "template"))
_populated = Background(lambda: populate(_template.result(), _ROOT / "populated"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """AD tests last, and their templates begun now (while the other tests run)."""
    here = Path(__file__).parent
    ad = [item for item in items if here in item.path.parents]
    if not ad:
        return
    items[:] = [item for item in items if here not in item.path.parents] + ad
    if missing_components():
        return
    _template.start()
    if any("populated_dc" in getattr(item, "fixturenames", ()) for item in ad):
        _populated.start()


def pytest_sessionfinish() -> None:
    shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def samba_template() -> Template:
    require_samba()
    return _template.result()


@pytest.fixture(scope="session")
def populated_domain(samba_template: Template) -> Template:
    return _populated.result()


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


@pytest.fixture
def populated_dc(populated_domain: Template, tmp_path: Path) -> Iterator[SambaDc]:
    """A fresh DC of its own holding the populated domain (2,000 users, a 1,600-member group)."""
    with SambaDc(tmp_path / "populated-dc", template=populated_domain) as dc:
        yield dc
