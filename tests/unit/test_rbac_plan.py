"""The reconciler's pure parts: config validation, desired state, the plan and its safety rules."""

import re

import pytest

from shared.errors import InvalidRequest
from shared.rbac.airflow import User
from shared.rbac.config import parse_config
from shared.rbac.groups import Membership
from shared.rbac.reconcile import RevocationCapExceeded, desired_state, plan

BASE = {
    ("can_read", "DAGs"),
    ("can_read", "DAG Runs"),
    ("menu_access", "DAGs"),
    ("can_read", "Website"),
}
DAGS = {"sales_a": set(), "sales_b": {"x"}, "ops_a": {"sales"}, "misc": set()}
CONFIG = {
    "airflow": {"url": "http://af", "auth": {"type": "bearer", "token_env": "T"}},
    "admin_groups": ["admins@x.com"],
    "projects": {
        "sales": {
            "role": "p-sales",
            "groups": ["Sales@X.com"],
            "dags": {"prefixes": ["sales_"], "tags": ["sales"]},
        },
        "ops": {"role": "p-ops", "groups": ["ops@x.com"], "dags": {"prefixes": ["ops_"]}},
    },
    "allow_list": ["keeper@x.com"],
    "reconciler": "rbac@p-1.iam.gserviceaccount.com",
    "max_revocations": 2,
    # ops_a carries the tag "sales": both projects select it, on purpose.
    "shared_dags": ["ops_a"],
}


def members(**groups):
    return Membership(
        members={g.replace("_", "@").lower() + ".com": set(m) for g, m in groups.items()}
    )


def world(m, users, roles=None):
    config = parse_config(CONFIG)
    desired = desired_state(config, m, DAGS, BASE, None)
    return config, desired, plan(config, desired, roles or {}, users, m)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"projects": {"s": {"role": "r", "groups": ["not-an-email"], "dags": {"ids": ["a"]}}}},
            "projects.s.groups.0: not an email address",
        ),
        (
            {"projects": {"s": {"role": "r", "groups": ["a@b.co"], "dags": {}}}},
            "projects.s.dags: select DAGs",
        ),
        (
            {"projects": {"s": {"role": "Admin", "groups": ["a@b.co"], "dags": {"ids": ["a"]}}}},
            "projects.s.role: 'Admin' is Airflow's built-in role",
        ),
        (
            {"airflow": {"url": "http://af", "auth": {"type": "basic", "username": "u"}}},
            "airflow.auth: basic auth needs",
        ),
        ({"max_revocations": -1}, "max_revocations: Input should be greater than or equal to 0"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_config_is_refused_naming_the_field(patch, message):
    with pytest.raises(InvalidRequest, match=re.escape(f"rbac.yaml: {message}")):
        parse_config({**CONFIG, **patch}, "rbac.yaml")


def test_a_config_that_manages_admin_must_name_the_reconciler():
    """Defect 3: configured as the guide said (admin_groups, Google auth on Composer, no
    reconciler), the first tick stripped the reconciler's own Admin."""
    composer = {**CONFIG, "airflow": {"url": "http://af", "auth": {"type": "google"}}}
    del composer["reconciler"]
    with pytest.raises(InvalidRequest, match="reconciler: admin_groups manages the Admin role"):
        parse_config(composer, "rbac.yaml")
    named = parse_config({**composer, "reconciler": "rbac@p-1.iam.gserviceaccount.com"})
    assert named.own_identity == "rbac@p-1.iam.gserviceaccount.com"
    # Without admin groups the reconciler never touches Admin: nothing to name.
    assert parse_config({**composer, "admin_groups": []}).own_identity is None


def test_project_role_drops_global_dag_access_and_adds_its_dags():
    m = members(Sales_x=["a@x.com"])
    _, desired, _ = world(m, [])
    sales = desired.roles["p-sales"]
    assert ("can_read", "DAGs") not in sales and ("can_read", "DAG Runs") not in sales
    assert ("menu_access", "DAGs") in sales and ("can_read", "Website") in sales
    assert {r for _, r in sales if r.startswith("DAG:")} == {
        "DAG:sales_a",
        "DAG:sales_b",
        "DAG:ops_a",
    }
    assert ("menu_access", "DAG Run:ops_a") in sales
    assert desired.users == {"a@x.com": {"p-sales": "member of sales@x.com"}}


def test_unknown_dag_id_is_named():
    config = parse_config(
        {
            **CONFIG,
            "projects": {"s": {"role": "r", "groups": ["a@b.co"], "dags": {"ids": ["nope"]}}},
        }
    )
    with pytest.raises(
        InvalidRequest, match=re.escape("projects.s.dags.ids: DAG 'nope' does not exist")
    ):
        desired_state(config, Membership(), DAGS, BASE, None)


def test_users_get_managed_roles_others_untouched_allow_list_never_changed():
    m = members(Sales_x=["a@x.com", "keeper@x.com"], ops_x=["b@x.com"])
    users = [
        User("a", "a@x.com", {"Viewer", "p-ops"}),  # keeps Viewer (unmanaged), loses p-ops
        User("gone", "gone@x.com", {"p-sales", "Op"}),  # in no group: loses p-sales only
        User("keeper", "keeper@x.com", {"Admin"}),  # allow-listed: never changed
    ]
    _, _, p = world(m, users)
    by_target = {c.target: c for c in p.changes}
    assert by_target["a"].add == {"p-sales"} and by_target["a"].remove == {"p-ops"}
    assert by_target["gone"].remove == {"p-sales"} and not by_target["gone"].add
    assert by_target["b@x.com"].kind == "create_user" and by_target["b@x.com"].add == {"p-ops"}
    assert "keeper" not in by_target and "keeper@x.com" not in by_target
    assert {c.kind for c in p.changes} == {"create_role", "create_user", "set_user_roles"}


def test_nothing_to_do_is_an_empty_plan():
    m = members(Sales_x=["a@x.com"])
    config, desired, _ = world(m, [])
    users = [User("a", "a@x.com", {"p-sales"})]
    roles = {r: set(p) for r, p in desired.roles.items()}
    assert plan(config, desired, roles, users, m).changes == []


def test_an_unread_group_holds_back_every_revocation_but_not_additions():
    m = members(ops_x=["b@x.com", "c@x.com"])
    m.failed["sales@x.com"] = "HttpError 500"
    users = [User("a", "a@x.com", {"p-sales"}), User("b", "b@x.com", {"p-sales"})]
    _, _, p = world(m, users)
    assert not any(c.remove for c in p.changes)
    assert {c.target for c in p.held_back} == {"a", "b"}
    assert [c.add for c in p.changes if c.target == "b"] == [frozenset({"p-ops"})]
    assert "sales@x.com" in p.notes[0]


def test_more_revocations_than_the_cap_stops_the_run():
    users = [User(u, f"{u}@x.com", {"p-sales"}) for u in "abc"]
    with pytest.raises(RevocationCapExceeded, match="3 revocations planned"):
        world(members(), users)


def test_a_dag_two_projects_select_is_refused_unless_listed_as_shared():
    config = parse_config({**CONFIG, "shared_dags": []})
    with pytest.raises(
        InvalidRequest, match=r"'ops_a' is selected by projects\.sales and projects\.ops"
    ):
        desired_state(config, members(), DAGS, BASE, None)
