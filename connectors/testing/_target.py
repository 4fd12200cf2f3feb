"""TargetContract: the tests every Target passes."""

from __future__ import annotations

import pytest

from connectors.base import Capability, ObjectError, Target, ValueDelta
from connectors.testing._dialect import Dialect


class TargetContract:
    """The contract of :class:`connectors.base.Target`, for a subclass named ``Test...`` that
    provides a fixture ``target`` yielding a :class:`Dialect` of an empty directory."""

    def test_is_a_target(self, target: Dialect) -> None:
        """The connector satisfies the Target protocol."""
        assert isinstance(target.connector, Target)
        target.connector.validate()

    def test_create_find_update_delete(self, target: Dialect) -> None:
        """The full life of one object through the target interface."""
        connector, name = target.connector, target.name
        ref = connector.create(
            "User", target.attributes("User", {"userName": "Ada@Example.org", "mail": "a@x"})
        )
        assert ref == connector.find("User", name("userName"), "ada@example.org")
        assert connector.find("User", name("userName"), "nobody") is None
        new_ref = connector.update("User", ref, {name("mail"): "b@x", name("department"): "R&D"})
        ref = new_ref or ref
        expected = {"userName": "Ada@Example.org", "mail": "b@x", "department": "R&D"}
        assert target.get("User", ref) == expected
        connector.update("User", ref, {name("department"): None})
        assert "department" not in (target.get("User", ref) or {})
        connector.delete("User", ref, soft=False)
        assert target.get("User", ref) is None
        assert connector.find("User", name("userName"), "ada@example.org") is None

    def test_soft_delete_disables(self, target: Dialect) -> None:
        """delete(soft=True) keeps the object but marks it inactive, where the connector
        declares SOFT_DELETE; the others refuse it for that object rather than delete it."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "u"}))
        if Capability.SOFT_DELETE not in connector.capabilities:
            with pytest.raises(ObjectError):
                connector.delete("User", ref, soft=True)
            assert target.get("User", ref) is not None
            return
        connector.delete("User", ref, soft=True)
        got = target.get("User", ref)
        assert got is not None and got.get("active") is False

    def test_delete_of_missing_object_succeeds(self, target: Dialect) -> None:
        """A replayed delete is harmless."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "u"}))
        connector.delete("User", ref, soft=False)
        connector.delete("User", ref, soft=False)

    def test_update_of_missing_object_is_an_object_error(self, target: Dialect) -> None:
        """Updating an object that does not exist escrows that object, nothing else."""
        connector = target.connector
        ref = connector.create("User", target.attributes("User", {"userName": "gone"}))
        connector.delete("User", ref, soft=False)
        with pytest.raises(ObjectError):
            connector.update("User", ref, {target.name("mail"): "x"})

    def test_multi_valued_write_and_clear(self, target: Dialect) -> None:
        """A list value is stored as a list; an empty list clears it."""
        connector = target.connector
        ref = connector.create(
            "User", target.attributes("User", {"userName": "u", "emails": ["a@x", "b@x"]})
        )
        assert (target.get("User", ref) or {})["emails"] == ["a@x", "b@x"]
        connector.update("User", ref, {target.name("emails"): []})
        assert "emails" not in (target.get("User", ref) or {})

    def test_value_deltas_add_and_remove_single_values(self, target: Dialect) -> None:
        """A target that declares VALUE_DELTAS adds and removes exactly the values named,
        and a replayed delta (values already added or already gone) changes nothing."""
        connector = target.connector
        if Capability.VALUE_DELTAS not in connector.capabilities:
            return  # the engine sends such a target whole lists
        emails = target.name("emails")
        ref = connector.create(
            "User", target.attributes("User", {"userName": "u", "emails": ["a@x", "b@x"]})
        )
        change = ValueDelta(add=("c@x",), remove=("a@x",))
        connector.update("User", ref, {emails: change})
        assert sorted((target.get("User", ref) or {})["emails"]) == ["b@x", "c@x"]
        connector.update("User", ref, {emails: change})
        assert sorted((target.get("User", ref) or {})["emails"]) == ["b@x", "c@x"]
