"""Reading groups through the official discovery client against the local Cloud Identity server."""

from shared.rbac.groups import GroupsReader


def reader(identity):
    return GroupsReader(identity.service(), retries=0)


def test_nested_groups_resolve_breadth_first_through_cycles_and_pages(identity):
    many = [f"user{i:03d}@corp.example" for i in range(450)]  # three pages of 200
    identity.set_groups(
        {
            "top@corp.example": [
                "A@Corp.Example",
                "mid@corp.example",
                "sa@p.iam.gserviceaccount.com",
            ],
            "mid@corp.example": ["b@corp.example", "leaf@corp.example", "top@corp.example"],
            "leaf@corp.example": many,
        }
    )
    r = reader(identity)
    found = r.read(["top@corp.example", "mid@corp.example"])
    assert found.complete
    assert found.members["top@corp.example"] == {
        "a@corp.example",
        "b@corp.example",
        "sa@p.iam.gserviceaccount.com",
        *many,
    }
    assert found.members["mid@corp.example"] == found.members["top@corp.example"]
    # each group looked up and listed once per run (leaf: three pages)
    assert found.calls == 3 + 1 + 1 + 3


def test_a_group_that_fails_or_is_missing_is_reported_not_guessed(identity):
    identity.set_groups(
        {
            "top@corp.example": ["a@corp.example", "mid@corp.example"],
            "mid@corp.example": ["b@corp.example"],
            "other@corp.example": ["c@corp.example"],
        }
    )
    identity.fail("mid@corp.example")
    found = reader(identity).read(["top@corp.example", "other@corp.example", "ghost@corp.example"])
    assert not found.complete
    assert set(found.failed) == {"top@corp.example", "ghost@corp.example"}
    assert "500" in found.failed["top@corp.example"]
    assert found.members == {"other@corp.example": {"c@corp.example"}}


def test_a_page_that_fails_half_way_through_a_group_fails_the_group_not_half_of_it(identity):
    many = [f"user{i:03d}@corp.example" for i in range(450)]  # pages 0, 1, 2
    identity.set_groups({"top@corp.example": ["mid@corp.example"], "mid@corp.example": many})
    identity.fail("mid@corp.example", page=1)
    found = reader(identity).read(["top@corp.example"])
    # pages 0 was read, page 1 failed: no partial member list is ever returned
    assert found.members == {} and set(found.failed) == {"top@corp.example"}
    assert "injected failure reading mid@corp.example" in found.failed["top@corp.example"]


def test_a_rate_limited_page_is_retried_by_the_client(identity):
    many = [f"user{i:03d}@corp.example" for i in range(450)]
    identity.set_groups({"big@corp.example": many})
    identity.fail("big@corp.example", mode="429", count=1, page=2)
    found = GroupsReader(identity.service(), retries=2).read(["big@corp.example"])
    assert found.complete and found.members["big@corp.example"] == set(many)
    assert found.calls == 1 + 3  # one lookup, three pages (the retry is inside the client)
