"""How one object type lives in an LDAP directory: where, which entries, which attributes.

The engine builds these from the job's schema (an objectDefinition's ``metadata`` and its
attribute definitions, with the template's defaults), so the connector needs no knowledge of
Graph's model; tests and embedders build them directly.
"""

from __future__ import annotations

import attrs

from connectors.ldap.syntax import check_attribute_description


def _lower_tuple(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(check_attribute_description(v).lower() for v in values)


@attrs.frozen(kw_only=True)
class LdapObjectType:
    """One object type of an LDAP directory.

    ``base_dn`` is the subtree read (source) and the container new entries go to (target);
    ``filter`` selects the type's entries within it; ``object_classes`` are written on create;
    a new entry's DN is ``rdn_attribute=value,base_dn`` unless the mapping gives a ``dn``.
    ``references`` are the DN-valued attributes (member, manager): the source gives them as
    anchors of the entries they name, the target takes target refs (DNs). ``multivalued``
    attributes are always lists; any other attribute is a single value (a list only if the
    entry really holds several). ``binary`` attributes are bytes. ``attributes`` limits what is
    read (empty: every user attribute). ``range_size``: multi-valued references are asked for
    ``range_size`` values at a time (``member;range=0-<range_size - 1>``, and the plain name
    too, for servers without ranges); 0 asks for whole attributes. Either way a ranged answer
    is read to its end (Windows ranges beyond 1,500 values unasked).

    ``match_base_dn`` is where a target looks for an existing entry (matching) when it is not
    ``base_dn``: in Active Directory sAMAccountName and userPrincipalName are unique across
    the domain, so a user outside the container must be found and joined, or every create
    fails with entryAlreadyExists. ``account_control`` marks Active Directory accounts
    (:mod:`connectors.ldap._ad_account`): created with their password and enabled in one
    add; a soft delete disables them through userAccountControl.
    """

    name: str
    base_dn: str
    filter: str = "(objectClass=*)"
    object_classes: tuple[str, ...] = ()
    rdn_attribute: str = "cn"
    anchor_attribute: str = "entryUUID"
    references: tuple[str, ...] = attrs.field(default=(), converter=_lower_tuple)
    multivalued: tuple[str, ...] = attrs.field(default=(), converter=_lower_tuple)
    binary: tuple[str, ...] = attrs.field(default=(), converter=_lower_tuple)
    attributes: tuple[str, ...] = ()
    range_size: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    match_base_dn: str = ""
    account_control: bool = False

    @property
    def ranged(self) -> tuple[str, ...]:
        """The attributes asked for in ranges: multi-valued references, if ``range_size``."""
        if not self.range_size:
            return ()
        return tuple(name for name in self.references if name in self.multivalued)

    @property
    def match_base(self) -> str:
        """The subtree a target's find searches."""
        return self.match_base_dn or self.base_dn

    def is_multivalued(self, attribute: str) -> bool:
        low = attribute.lower()
        return low in self.multivalued or low in ("objectclass",)


#: the types most directories hold, for tests and embedders who do not go through a schema
def people(base_dn: str) -> LdapObjectType:
    return LdapObjectType(
        name="User",
        base_dn=f"ou=people,{base_dn}",
        filter="(objectClass=inetOrgPerson)",
        object_classes=("inetOrgPerson",),
        rdn_attribute="uid",
        references=("manager", "secretary"),
        multivalued=("mail", "telephoneNumber", "mobile", "ou", "departmentNumber"),
        binary=("jpegPhoto", "userCertificate", "userPassword"),
    )


def groups(base_dn: str) -> LdapObjectType:
    return LdapObjectType(
        name="Group",
        base_dn=f"ou=groups,{base_dn}",
        filter="(objectClass=groupOfNames)",
        object_classes=("groupOfNames",),
        rdn_attribute="cn",
        references=("member", "owner"),
        multivalued=("member", "owner"),
    )


#: Active Directory's users and groups as Entra provisions them; found across the whole domain
#: (``domain_dn``), created in ``container``
def ad_users(domain_dn: str, container: str) -> LdapObjectType:
    return LdapObjectType(
        name="User",
        base_dn=container,
        filter="(&(objectClass=user)(objectCategory=person))",
        object_classes=("top", "person", "organizationalPerson", "user"),
        rdn_attribute="cn",
        anchor_attribute="objectGUID",
        references=("manager",),
        multivalued=("otherMailbox", "proxyAddresses"),
        binary=("objectGUID", "objectSid"),
        match_base_dn=domain_dn,
        account_control=True,
    )


def ad_groups(domain_dn: str, container: str) -> LdapObjectType:
    return LdapObjectType(
        name="Group",
        base_dn=container,
        filter="(objectClass=group)",
        object_classes=("top", "group"),
        rdn_attribute="cn",
        anchor_attribute="objectGUID",
        references=("member", "managedBy"),
        multivalued=("member",),
        binary=("objectGUID", "objectSid"),
        match_base_dn=domain_dn,
    )
