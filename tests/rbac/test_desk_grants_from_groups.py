"""The desk's grants read from Google Groups through the official client and the local Cloud
Identity server: nested groups count, a change is seen after the cache's time, an unreadable
group grants nothing."""

from shared.desk.access import DeskAccess, GroupGrants
from shared.rbac.groups import GroupsReader

ACCESS = DeskAccess(
    category_managers={"pricing-dairy@corp.example": ["dairy"]},
    store_managers={"store-12@corp.example": [12]},
)


def test_grants_follow_the_groups_within_the_cache_time(identity):
    identity.set_groups({
        "pricing-dairy@corp.example": ["paul@corp.example", "dairy-leads@corp.example"],
        "dairy-leads@corp.example": ["lea@corp.example"],
        "store-12@corp.example": ["sam@corp.example"],
    })  # fmt: skip
    now = [0.0]
    found = GroupGrants(ACCESS, lambda: GroupsReader(identity.service(), retries=0), ttl_s=300,
                        clock=lambda: now[0])  # fmt: skip
    first = found()
    assert first["lea@corp.example"].decides("dairy")  # through a nested group
    assert first["sam@corp.example"].stores == {12}
    identity.set_groups({"pricing-dairy@corp.example": ["lea@corp.example"],
                         "store-12@corp.example": ["sam@corp.example"]})  # fmt: skip
    now[0] = 299.0
    assert "paul@corp.example" in found() and found.reads == 1  # still cached
    now[0] = 300.0
    later = found()
    assert found.reads == 2 and "paul@corp.example" not in later
    assert later["lea@corp.example"].decides("dairy")


def test_a_group_that_cannot_be_read_grants_nothing_and_the_others_still_do(identity):
    identity.set_groups({"pricing-dairy@corp.example": ["paul@corp.example"],
                         "store-12@corp.example": ["sam@corp.example"]})  # fmt: skip
    identity.fail("pricing-dairy@corp.example", "500")
    found = GroupGrants(ACCESS, lambda: GroupsReader(identity.service(), retries=0))()
    assert "paul@corp.example" not in found
    assert found["sam@corp.example"].stores == {12}
