"""The connector contract, run against the JSON directory with connectors.testing.

Run it with pytest: ``pytest examples/json_directory/test_json_directory.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from json_directory import JsonDirectory  # next to this file: pytest puts its folder on sys.path

from connectors.testing import Dialect, SourceContract, TargetContract


class TestJsonDirectory(SourceContract, TargetContract):
    @pytest.fixture
    def source(self, tmp_path: Path) -> Dialect:
        """The suite's names are the directory's, and the suite's keys its anchors."""
        directory = JsonDirectory(tmp_path / "directory.json", create=True)

        def put(object_type: str, key: str, attributes: dict[str, Any]) -> str:
            directory.put(object_type, key, attributes)
            return key

        return Dialect(directory, put=put, remove=directory.remove, read=directory.get)

    @pytest.fixture
    def target(self, source: Dialect) -> Dialect:
        """The same directory: the connector is a source and a target."""
        return source
