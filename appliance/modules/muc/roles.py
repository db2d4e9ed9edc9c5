"""Roles and affiliations (XEP-0045 §5): ranks, the default role of an affiliation, and who may change what."""

from __future__ import annotations

from appliance.xmpp.errors import StanzaError

AFFILIATIONS = ("owner", "admin", "member", "none", "outcast")
ROLES = ("moderator", "participant", "visitor", "none")
AFFILIATION_RANK = {"outcast": -1, "none": 0, "member": 1, "admin": 2, "owner": 3}
ROLE_RANK = {"none": 0, "visitor": 1, "participant": 2, "moderator": 3}


def default_role(affiliation: str, moderated: bool) -> str:
    """The role an occupant gets on entering (§5.1.2)."""
    if affiliation in ("owner", "admin"):
        return "moderator"
    if affiliation == "member":
        return "participant"
    return "visitor" if moderated else "participant"


def check_role_change(actor_role: str, actor_aff: str, target_aff: str, target_role: str, new_role: str) -> None:
    """Raise unless an occupant (actor) may give `new_role` to another (§8.2-8.6, §9.6-9.7)."""
    if new_role not in ROLES:
        raise StanzaError.bad_request(f"Unknown role {new_role!r}")
    if actor_role != "moderator":
        raise StanzaError.forbidden("Only moderators change roles")
    # Granting or revoking moderator status is for admins and owners (§9.6, §9.7).
    if "moderator" in (new_role, target_role) and AFFILIATION_RANK[actor_aff] < AFFILIATION_RANK["admin"]:
        raise StanzaError.forbidden("Only admins and owners grant or revoke moderator status")
    if new_role != "moderator" and AFFILIATION_RANK[target_aff] >= AFFILIATION_RANK["admin"]:
        raise StanzaError.not_allowed("Admins and owners keep their moderator role")
    if AFFILIATION_RANK[target_aff] > AFFILIATION_RANK[actor_aff]:
        raise StanzaError.not_allowed("The occupant has a higher affiliation than you")


def check_affiliation_change(actor_aff: str, target_aff: str, new_aff: str) -> None:
    """Raise unless `actor_aff` may change `target_aff` into `new_aff` (§9, §10.3-10.7)."""
    if new_aff not in AFFILIATIONS:
        raise StanzaError.bad_request(f"Unknown affiliation {new_aff!r}")
    if actor_aff == "owner":
        return
    if actor_aff != "admin":
        raise StanzaError.forbidden("Only admins and owners change affiliations")
    if AFFILIATION_RANK[target_aff] >= AFFILIATION_RANK["admin"] or new_aff in ("admin", "owner"):
        raise StanzaError.not_allowed("Only owners change the affiliation of admins and owners")


def may_read_list(actor_role: str, actor_aff: str, affiliation: str, member_list_roles: tuple[str, ...]) -> bool:
    """Whether an occupant may fetch the list of one affiliation (§9.5, §10.5)."""
    if AFFILIATION_RANK[actor_aff] >= AFFILIATION_RANK["admin"]:
        return True
    return affiliation == "member" and actor_role in member_list_roles
