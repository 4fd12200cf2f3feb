"""The connector contract as a test kit: run the suite every connector passes against yours.

What lives here: :class:`Dialect` (how the suite shapes and reads one directory), the contract
tests as base classes, :class:`SourceContract` and :class:`TargetContract`, and the helpers
they use (:func:`read_all`, :func:`as_values`). The tests are the executable form of the
docstrings of :mod:`connectors.base`: a connector that passes them is fit for the engine.

Use it from your own tests (pytest collects subclasses whose names start with ``Test``; the
base classes themselves are never collected)::

    import pytest
    from connectors.testing import Dialect, SourceContract, TargetContract

    class TestMyDirectory(SourceContract, TargetContract):
        @pytest.fixture
        def source(self, tmp_path):
            directory = MyDirectory(tmp_path / "data")
            dialect = Dialect(directory, put=..., remove=..., read=directory.get)
            yield dialect
            dialect.close()

        @pytest.fixture
        def target(self, tmp_path): ...

Subclass only :class:`SourceContract` for a source, only :class:`TargetContract` for a target.
The ``source`` and ``target`` fixtures yield a :class:`Dialect` for a fresh, empty directory;
they may also come from a ``conftest.py``, and may be parametrized to run several set-ups.
``examples/json_directory/`` in the syncjob repository is a complete example.

This package imports the standard library, pytest and :mod:`connectors.base`, nothing else of
syncjob: never ``engine``, never ``tests``, so that it ships with the connectors and works in
a connector's own repository. pytest is a test dependency, imported only here (install the
``testing`` extra). Its assertions are rewritten by pytest, as in a test module, so that a
failure shows the values compared.
"""

from __future__ import annotations

import pytest

# before the modules holding the tests are imported (a no-op outside a pytest run)
pytest.register_assert_rewrite("connectors.testing._source", "connectors.testing._target")

from connectors.testing._dialect import Dialect  # noqa: E402
from connectors.testing._source import SourceContract, as_values, read_all  # noqa: E402
from connectors.testing._target import TargetContract  # noqa: E402

__all__ = ["Dialect", "SourceContract", "TargetContract", "as_values", "read_all"]
