"""The reconciler against a real Airflow (2.10.5 and 3.3.2): access follows the groups."""

from __future__ import annotations

import re

import pytest

from local.airflow import visible_dags
from shared.errors import InvalidRequest
from shared.rbac.airflow import AirflowClient
from shared.rbac.config import parse_config
from shared.rbac.groups import GroupsReader, cloud_identity_service
from shared.rbac.reconcile import RevocationCapExceeded
from shared.rbac.sync import sync

GROUPS = {
    "admins@corp.example": ["root@corp.example"],
    "pricing@corp.example": ["alice@corp.example", "pricing-leads@corp.example"],
    # nested, with a cycle back to its parent
    "pricing-leads@corp.example": ["bob@corp.example", "pricing@corp.example"],
    "promo@corp.example": ["carol@corp.example", "etl@proj.iam.gserviceaccount.com"],
}


def make_config(af, **overrides):
    config = {
        "airflow": {
            "url": af.url,
            "auth": {"type": "basic", "username": "admin", "password_env": "AIRFLOW_TEST_PW"},
        },
        "admin_groups": ["admins@corp.example"],
        "projects": {
            "pricing": {
                "role": "project-pricing",
                "groups": ["pricing@corp.example"],
                "dags": {"prefixes": ["pricing_"], "tags": ["pricing"]},
            },
            "promotions": {
                "role": "project-promotions",
                "groups": ["promo@corp.example"],
                "dags": {"prefixes": ["promo_"]},
            },
        },
        "allow_list": ["admin@example.com"],
        "max_revocations": 10,
    }
    config.update(overrides)
    return parse_config(config)


@pytest.fixture
def run(airflow, identity, monkeypatch):
    monkeypatch.setenv("AIRFLOW_TEST_PW", airflow.admin_password)

    def run_sync(config=None, **kwargs):
        client = AirflowClient(airflow.url, username="admin", password=airflow.admin_password)
        result = sync(
            config or make_config(airflow),
            groups=GroupsReader(cloud_identity_service(), retries=0),
            airflow=client,
            **kwargs,
        )
        return result

    return run_sync


def _admin(af) -> AirflowClient:
    return AirflowClient(af.url, username="admin", password=af.admin_password)


def sees(af, email: str) -> set[str]:
    return visible_dags(af, email)


PRICING = {"pricing_daily", "pricing_weekly", "elasticity_report"}
PROMO = {"promo_uplift", "promo_calendar"}
ALL = PRICING | PROMO | {"shared_cleanup"}


def test_members_see_only_their_projects_and_access_follows_the_groups(airflow, identity, run):
    identity.set_groups(GROUPS)
    first = run()
    assert first.changes and not first.held_back
    assert sees(airflow, "alice@corp.example") == PRICING
    assert sees(airflow, "bob@corp.example") == PRICING  # through the nested group
    assert sees(airflow, "carol@corp.example") == PROMO
    assert sees(airflow, "root@corp.example") == ALL
    users = {u.email: u for u in _admin(airflow).users()}
    assert users["etl@proj.iam.gserviceaccount.com"].roles == {"project-promotions"}
    assert users["admin@example.com"].roles == {"Admin"}

    second = run()
    assert second.changes == [] and second.airflow_writes == 0

    # bob leaves, dave joins; the access follows
    identity.set_groups(
        {
            **GROUPS,
            "pricing-leads@corp.example": ["pricing@corp.example"],
            "promo@corp.example": [*GROUPS["promo@corp.example"], "dave@corp.example"],
        }
    )
    run()
    assert sees(airflow, "bob@corp.example") == set()
    assert sees(airflow, "dave@corp.example") == PROMO

    # a DAG moves from pricing to promotions
    moved = make_config(airflow)
    projects = moved.model_dump()["projects"]
    projects["pricing"]["dags"] = {"prefixes": ["pricing_"]}
    projects["promotions"]["dags"] = {"prefixes": ["promo_"], "ids": ["elasticity_report"]}
    config = make_config(airflow, projects=projects)
    run(config)
    assert sees(airflow, "alice@corp.example") == PRICING - {"elasticity_report"}
    assert sees(airflow, "carol@corp.example") == PROMO | {"elasticity_report"}
    assert _admin(airflow).users()[0].roles  # nothing deleted
    assert run(config).airflow_writes == 0


def test_a_group_that_cannot_be_read_revokes_nothing(airflow, identity, run):
    identity.set_groups(GROUPS)
    run()
    # carol leaves promotions and erin joins pricing, while the promo group cannot be read
    identity.set_groups(
        {
            **GROUPS,
            "promo@corp.example": ["etl@proj.iam.gserviceaccount.com"],
            "pricing@corp.example": [*GROUPS["pricing@corp.example"], "erin@corp.example"],
        }
    )
    identity.fail("promo@corp.example")
    result = run()
    assert result.held_back and "promo@corp.example" in result.notes[0]
    assert sees(airflow, "carol@corp.example") == PROMO  # not revoked
    assert sees(airflow, "erin@corp.example") == PRICING  # additions still applied
    identity.heal()
    run()
    assert sees(airflow, "carol@corp.example") == set()


def test_the_revocation_cap_stops_a_mass_removal_and_the_allow_list_survives(
    airflow, identity, run
):
    identity.set_groups(GROUPS)
    run()
    identity.set_groups({g: [] for g in GROUPS})
    client_before = {u.email: u.roles for u in _admin(airflow).users()}
    with pytest.raises(RevocationCapExceeded, match="max_revocations=2"):
        run(make_config(airflow, max_revocations=2))
    assert {u.email: u.roles for u in _admin(airflow).users()} == client_before
    run()  # within the default cap: everyone leaves, nobody is deleted
    after = {u.email: u.roles for u in _admin(airflow).users()}
    assert after["admin@example.com"] == {"Admin"}
    assert after["alice@corp.example"] == set() or after["alice@corp.example"] <= {"Public"}


def test_an_unknown_dag_in_the_config_is_named(airflow, identity, run):
    identity.set_groups(GROUPS)
    config = make_config(airflow)
    projects = config.model_dump()["projects"]
    projects["pricing"]["dags"]["ids"] = ["pricing_montly"]
    with pytest.raises(InvalidRequest, match="'pricing_montly' does not exist"):
        run(make_config(airflow, projects=projects))


def test_cli_sync_dry_run_prints_the_plan_and_changes_nothing(
    airflow, identity, run, tmp_path, capsys
):
    import yaml

    from shared.cli import main

    identity.set_groups({**GROUPS, "promo@corp.example": ["zoe@corp.example"]})
    config = make_config(airflow).model_dump(mode="json")
    path = tmp_path / "rbac.yaml"
    path.write_text(yaml.safe_dump(config))
    before = {u.email: u.roles for u in _admin(airflow).users()}
    assert main(["rbac", "sync", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"create_user\s+zoe@corp\.example", out) and "planned (dry run)" in out
    assert "0 Airflow writes" in out
    assert {u.email: u.roles for u in _admin(airflow).users()} == before
    assert airflow.admin_password not in out


def test_cli_single_role_mode_like_the_old_tool(airflow, capsys, monkeypatch):
    from shared.cli import main

    monkeypatch.setenv("AIRFLOW_PASSWORD", airflow.admin_password)
    argv = ["rbac", "role", "-u", airflow.url, "-r", "team-promo", "-d", "promo_"]
    assert main([*argv, "--user", "admin"]) == 0
    assert "role team-promo created: 2 DAG(s)" in capsys.readouterr().out
    perms = _admin(airflow).roles()["team-promo"]
    assert {r for _, r in perms if r.startswith(("DAG:", "DAG Run:"))} == {
        "DAG:promo_uplift",
        "DAG:promo_calendar",
        "DAG Run:promo_uplift",
        "DAG Run:promo_calendar",
    }
    assert ("can_read", "DAGs") not in perms and ("can_read", "DAG Code") in perms
    assert main([*argv, "--user", "admin"]) == 0
    assert "already up to date" in capsys.readouterr().out
