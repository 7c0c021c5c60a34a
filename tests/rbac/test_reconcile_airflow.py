"""The reconciler against a real Airflow (2.10.5 and 3.3.2): access follows the groups."""

from __future__ import annotations

import contextlib
import re

import pytest
import requests

from local.airflow import visible_dags
from shared.errors import InvalidRequest
from shared.rbac.airflow import AirflowClient
from shared.rbac.config import parse_config
from shared.rbac.groups import GroupsReader
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

    def run_sync(config=None, session=None, **kwargs):
        client = AirflowClient(
            airflow.url, username="admin", password=airflow.admin_password, session=session
        )
        run_sync.client = client  # the last run's client: its calls and writes_log
        result = sync(
            config or make_config(airflow),
            groups=GroupsReader(identity.service(), retries=0),
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


@pytest.mark.parametrize("role", ["Op", "op", "User", "Public", "admin", "VIEWER"])
def test_built_in_roles_are_refused_as_project_roles_and_left_untouched(
    airflow, capsys, monkeypatch, role
):
    """Issue 15, item 2: `role: Op` rewrote Airflow's own role and stripped it from people."""
    from shared.cli import main

    before = _admin(airflow).roles()
    projects = make_config(airflow).model_dump()["projects"]
    projects["pricing"]["role"] = role
    with pytest.raises(InvalidRequest, match="built-in role"):
        make_config(airflow, projects=projects)
    monkeypatch.setenv("AIRFLOW_PASSWORD", airflow.admin_password)
    argv = ["rbac", "role", "-u", airflow.url, "-r", role, "-d", "promo_", "--user", "admin"]
    assert main(argv) == 2
    assert "built-in role" in capsys.readouterr().err
    assert _admin(airflow).roles() == before  # nothing rewritten


def test_a_project_written_twice_in_the_yaml_is_refused_naming_the_lines(airflow, tmp_path):
    """Issue 15, item 3: YAML keeps the second of two equal keys and drops the first."""
    from shared.rbac.config import load_config

    path = tmp_path / "rbac.yaml"
    path.write_text(
        f"airflow: {{url: {airflow.url}, auth: {{type: basic, username: admin, "
        "password_env: AIRFLOW_TEST_PW}}\n"
        "projects:\n"
        "  pricing:\n"
        "    role: project-pricing\n"
        "    groups: [pricing@corp.example]\n"
        "    dags: {prefixes: [pricing_]}\n"
        "  pricing:\n"
        "    role: project-pricing-2\n"
        "    groups: [promo@corp.example]\n"
        "    dags: {prefixes: [promo_]}\n"
    )
    with pytest.raises(InvalidRequest, match=r"key 'pricing' is written twice \(lines 3 and 7\)"):
        load_config(path)


class _FlakyHealth(requests.adapters.HTTPAdapter):
    """A transport that answers the version probe with ``status`` the first ``times`` times
    and passes everything else (and later probes) to the real Airflow."""

    def __init__(self, status: int, times: int):
        super().__init__()
        self.status, self.left = status, times

    def send(self, request, **kwargs):
        if request.url.endswith("/api/v2/monitor/health") and self.left > 0:
            self.left -= 1
            response = requests.Response()
            response.status_code, response._content = self.status, b"upstream unavailable"
            response.request, response.url = request, request.url
            return response
        return super().send(request, **kwargs)


def test_a_failed_version_probe_is_retried_and_a_lasting_one_reported_as_it_is(airflow):
    """Issue 15, item 8: one failed probe made Airflow 3 look like 2 (and the error blamed
    /api/v1 being removed)."""
    from shared.errors import TransientError
    from shared.rbac.airflow import AirflowClient

    def client(status, times):
        session = requests.Session()
        session.mount("http://", _FlakyHealth(status, times))
        return AirflowClient(
            airflow.url, username="admin", password=airflow.admin_password, session=session
        )

    once = client(503, 1)
    assert set(once.dags()) >= {"pricing_daily", "promo_uplift"}  # works after one retry
    assert once.version == airflow.major
    lasting = client(503, 100)
    with pytest.raises(TransientError, match="version probe failed 4 times, last: 503") as info:
        lasting.dags()
    assert "/api/v1" not in str(info.value)


def test_a_dag_selected_by_two_projects_is_refused_unless_shared_on_purpose(airflow, identity, run):
    """Issue 15, item 3: both roles silently got a DAG two selectors matched."""
    identity.set_groups(GROUPS)
    projects = make_config(airflow).model_dump()["projects"]
    projects["promotions"]["dags"]["ids"] = ["pricing_daily"]
    writes_before = _admin(airflow).roles()
    with pytest.raises(InvalidRequest, match=r"'pricing_daily' is selected by projects.pricing "
                                             r"and projects.promotions"):  # fmt: skip
        run(make_config(airflow, projects=projects))
    assert _admin(airflow).roles() == writes_before
    run(make_config(airflow, projects=projects, shared_dags=["pricing_daily"]))
    assert "pricing_daily" in sees(airflow, "carol@corp.example")


def test_one_rejected_write_is_reported_and_the_others_still_apply(airflow, identity, run):
    """Issue 15, item 5: a username that is another person's email answered 409 and stopped
    the run before later changes, on every run."""
    from shared.rbac.reconcile import ChangesFailed

    admin = _admin(airflow)
    admin._detect()
    clash = f"zed-{airflow.major}@corp.example"
    admin._call("POST", f"{admin.fab}/users", "create_user", json={
        "username": clash, "email": f"zed.old-{airflow.major}@corp.example",
        "first_name": "zed", "last_name": "old", "roles": [{"name": "Viewer"}],
        "password": "not-used-Aa1!",
    })  # fmt: skip
    later = f"zz-{airflow.major}@corp.example"  # sorts after the clash
    identity.set_groups({**GROUPS, "promo@corp.example": [clash, later]})
    for _ in range(2):  # and again: the same report, the rest converged
        with pytest.raises(ChangesFailed, match=f"conflict: {clash}: the Airflow user named"):
            run()
        assert sees(airflow, later) == PROMO
    assert "project-promotions" not in {u.username: u for u in admin.users()}[clash].roles


def test_the_reconciler_never_strips_its_own_roles(airflow, identity, run):
    """Issue 15, item 7: with an empty allow-list and its account in no admin group, one run
    removed its own Admin role and every later run failed with 403."""
    from shared.rbac.reconcile import SelfLockout

    identity.set_groups(GROUPS)
    with pytest.raises(SelfLockout, match="reconciler's own user 'admin'"):
        run(make_config(airflow, allow_list=[]))
    me = {u.username: u for u in _admin(airflow).users()}["admin"]
    assert "Admin" in me.roles
    run()  # and the next run (admin allow-listed) still works


def test_a_member_who_also_holds_op_is_reported_and_with_remove_loses_it(airflow, identity, run):
    """Issue 15, item 4: a member who also held Op (Composer's registration role) kept it and
    saw every DAG, without a word."""
    member = f"opal-{airflow.major}@corp.example"
    identity.set_groups({**GROUPS, "pricing@corp.example": [member]})
    run()
    admin = _admin(airflow)
    user = {u.email: u for u in admin.users()}[member]
    admin.set_user_roles(user, user.roles | {"Op"})
    assert sees(airflow, member) >= ALL  # Op sees everything

    reported = run(force=True)
    assert any(f"{member} (Op)" in n and "can see DAGs outside" in n for n in reported.notes)
    assert sees(airflow, member) >= ALL  # report (the default) changes nothing

    removed = run(make_config(airflow, builtin_roles_of_members="remove"), force=True)
    assert any(c.target == member and "Op" in c.remove for c in removed.changes)
    assert sees(airflow, member) == PRICING


def _signing_in(request) -> bool:
    """The client's sign-in (a token on 3, the web form's session on 2.10): not a write."""
    return request.path_url.startswith(("/auth/token", "/login/"))


class _FailWrite(requests.adapters.HTTPAdapter):
    """A transport that answers 503 to the ``k``-th write (POST, PATCH, DELETE) of a run, as a
    restarting web server or a dropped connection would, and passes everything else."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.writes, self.failed = k, 0, ""

    def send(self, request, **kwargs):
        if request.method != "GET" and not _signing_in(request):
            self.writes += 1
            if self.writes == self.k:
                self.failed = f"{request.method} {request.path_url}"
                response = requests.Response()
                response.status_code, response._content = 503, b"server restarting"
                response.request, response.url = request, request.url
                return response
        return super().send(request, **kwargs)


def _failing_at(k: int) -> tuple[requests.Session, _FailWrite]:
    session, adapter = requests.Session(), _FailWrite(k)
    session.mount("http://", adapter)
    return session, adapter


def _narrowed(af, **overrides):
    """The test config with pricing's tag selector dropped: elasticity_report leaves pricing,
    so the role's permissions shrink (on 2.10 a PATCH cannot do that)."""
    projects = make_config(af).model_dump()["projects"]
    projects["pricing"]["dags"] = {"prefixes": ["pricing_"]}
    return make_config(af, projects=projects, **overrides)


def test_a_role_switch_failing_at_any_write_never_takes_access_and_the_next_run_ends_it(
    airflow, identity, run
):
    """Issue 15, item 1: on 2.10 a role whose DAGs shrank was deleted and recreated, then
    given back holder by holder; a failure in between left the project without access."""
    from shared.errors import TransientError

    identity.set_groups(GROUPS)
    narrow, kept = _narrowed(airflow), PRICING - {"elasticity_report"}
    run()
    counting, counter = _failing_at(0)  # fails nothing: counts the writes of the switch
    clean = run(narrow, session=counting)
    assert counter.writes and clean.changes
    assert sees(airflow, "alice@corp.example") == kept
    for k in range(1, counter.writes + 1):
        run()  # back to the wide role
        assert sees(airflow, "alice@corp.example") == PRICING
        session, adapter = _failing_at(k)
        with pytest.raises(TransientError, match="503"):
            run(narrow, session=session)
        for member in ("alice@corp.example", "bob@corp.example"):
            # whatever write failed, each holder still sees at least the DAGs it keeps
            assert sees(airflow, member) >= kept, (k, adapter.failed, member)
        run(narrow)  # the next run ends the switch
        for member in ("alice@corp.example", "bob@corp.example"):
            assert sees(airflow, member) == kept, (k, adapter.failed, member)
        assert not [r for r in _admin(airflow).roles() if r.endswith("~next")]
        assert run(narrow).airflow_writes == 0
    run()


def test_an_allow_listed_holder_of_a_shrinking_role_is_never_written_to(airflow, identity, run):
    """Issue 15, item 1: the recreate path wrote to allow-listed users (PATCH .../users/<name>)
    and, on the way back, skipped them: they lost the role for good."""
    from shared.rbac.reconcile import ChangesFailed

    keeper = f"keeper-{airflow.major}@corp.example"
    identity.set_groups({**GROUPS, "pricing@corp.example": [keeper, "alice@corp.example"]})
    allow = ["admin@example.com", keeper]
    run()  # keeper is an ordinary member for now
    admin = _admin(airflow)
    assert "project-pricing" in {u.email: u for u in admin.users()}[keeper].roles
    narrow = _narrowed(airflow, allow_list=allow)
    if airflow.major == 2:
        with pytest.raises(ChangesFailed, match=rf"would take it from \['{keeper}'\]"):
            run(narrow)
    else:
        run(narrow)  # Airflow 3 sets the permissions in place
    assert not [w for w in run.client.calls.writes_log if keeper in w]
    assert "project-pricing" in {u.email: u for u in admin.users()}[keeper].roles
    assert sees(airflow, "alice@corp.example") >= PRICING - {"elasticity_report"}
    identity.set_groups(GROUPS)
    run()


def test_a_renamed_or_removed_projects_role_is_revoked_and_deleted(
    airflow, identity, run, tmp_path
):
    """Issue 15, item 6: after a rename or a removal the old role was no longer managed, and
    its holders kept seeing its DAGs."""
    from shared.rbac.ledger import FileRoleLedger

    ledger = FileRoleLedger(str(tmp_path / "owned-roles.json"))
    # the project roles were created by earlier runs in this Airflow: the ledger says so
    ledger.add({"project-pricing", "project-promotions"})
    admin = _admin(airflow)
    admin.create_role("hand-made", set())  # an admin's own role: never the reconciler's
    identity.set_groups(GROUPS)
    run(ledger=ledger)
    assert {"project-pricing", "project-promotions"} <= ledger.owned()

    projects = make_config(airflow).model_dump()["projects"]
    projects["pricing"]["role"] = "pricing-team"
    renamed = make_config(airflow, projects=projects)
    result = run(renamed, ledger=ledger)
    assert any(c.kind == "delete_role" and c.target == "project-pricing" for c in result.changes)
    roles = admin.roles()
    assert "project-pricing" not in roles and "pricing-team" in roles
    users = {u.email: u for u in admin.users()}
    assert users["alice@corp.example"].roles == {"pricing-team"}
    assert sees(airflow, "bob@corp.example") == PRICING
    assert ledger.owned() >= {"pricing-team"} and "project-pricing" not in ledger.owned()

    del projects["promotions"]
    removed = make_config(airflow, projects=projects)
    before = admin.roles()
    with pytest.raises(RevocationCapExceeded):  # carol, etl: two revocations
        run(make_config(airflow, projects=projects, max_revocations=1), ledger=ledger)
    assert admin.roles() == before
    run(removed, ledger=ledger)
    assert "project-promotions" not in admin.roles()
    assert sees(airflow, "carol@corp.example") == set()
    assert "hand-made" in admin.roles()  # never recorded as the reconciler's: untouched
    assert run(removed, ledger=ledger).airflow_writes == 0

    run(ledger=ledger)  # back to the shared test config: pricing-team retired in turn
    assert "pricing-team" not in admin.roles()
    assert sees(airflow, "carol@corp.example") == PROMO


def test_a_user_in_no_group_ends_with_the_registration_role(airflow, identity, run):
    """Defect 4: Composer registers new users with Op (every DAG) unless the guide's two
    settings name another role; a user registered before, in no project group, kept Op for
    ever. With builtin_roles_of_members: remove, they keep only the registration role."""
    identity.set_groups(GROUPS)
    run()
    admin = _admin(airflow)
    stray = f"stray-{airflow.major}@corp.example"
    admin.create_user(stray, {"Op"})
    assert sees(airflow, stray) >= ALL

    reported = run(force=True)
    assert any(f"{stray} (Op)" in n and "in no configured group" in n for n in reported.notes)
    assert sees(airflow, stray) >= ALL  # report (the default) changes nothing

    removed = run(make_config(airflow, builtin_roles_of_members="remove"), force=True)
    [change] = [c for c in removed.changes if "Op" in c.remove]
    assert change.add == {"Public"} and change.why == "in none of the configured groups"
    user = {u.email: u for u in admin.users()}[stray]
    assert user.roles == {"Public"}
    assert sees(airflow, stray) == set()


class _FailUser(requests.adapters.HTTPAdapter):
    """A transport that answers 503 to the first ``times`` writes to one user's URL (a web
    server that fails on that user's row) and passes everything else."""

    def __init__(self, fragment: str, times: int):
        super().__init__()
        self.fragment, self.times, self.failed = fragment, times, 0

    def send(self, request, **kwargs):
        hit = request.method != "GET" and self.fragment in request.path_url
        if hit and self.failed < self.times:
            self.failed += 1
            response = requests.Response()
            response.status_code, response._content = 503, b"upstream timeout"
            response.request, response.url = request, request.url
            return response
        return super().send(request, **kwargs)


def test_one_users_lasting_5xx_is_tried_again_reported_and_stops_no_other_change(
    airflow, identity, run
):
    """Issue 25, item 4: a transient error was not isolated per change as a refusal is: one
    user's persistent 5xx stopped every later change of every run."""
    from shared.errors import TransientError  # the run ends ChangesDeferred, one of them

    stuck, later = f"carl-{airflow.major}@corp.example", f"zoe-{airflow.major}@corp.example"
    before = {**GROUPS, "pricing@corp.example": [*GROUPS["pricing@corp.example"], stuck, later]}
    identity.set_groups(before)
    run()
    # both move from pricing to promotions; the later one sorts after the stuck one
    identity.set_groups(
        {**GROUPS, "promo@corp.example": [*GROUPS["promo@corp.example"], stuck, later]}
    )
    session = requests.Session()
    lasting = _FailUser(stuck.split("@")[0], times=100)
    session.mount("http://", lasting)
    with pytest.raises(TransientError, match=rf"{stuck}: after 3 attempts: .*503") as info:
        run(session=session)
    assert lasting.failed == 3 and "the others were applied" in str(info.value)
    assert sees(airflow, later) == PROMO  # the change after it went through
    assert sees(airflow, stuck) == PRICING  # unchanged, and said so
    once = _FailUser(stuck.split("@")[0], times=1)
    session = requests.Session()
    session.mount("http://", once)
    result = run(session=session)  # one 503: tried again, applied, a clean run
    assert once.failed == 1 and not result.failures
    assert sees(airflow, stuck) == PROMO
    identity.set_groups(GROUPS)
    run()


def test_an_existing_role_is_adopted_only_when_the_config_says_so(airflow, identity, run, tmp_path):
    """Issue 25, item 5: pointing a project at an existing hand-made role adopted it silently
    (its permissions rewritten, its holders lost it), and reverting the config deleted it."""
    from shared.rbac.ledger import FileRoleLedger
    from shared.rbac.reconcile import ChangesFailed

    ledger = FileRoleLedger(str(tmp_path / "owned-roles.json"))
    ledger.add({"project-pricing", "project-promotions"})  # made by earlier runs here
    admin = _admin(airflow)
    admin._detect()
    theirs, holder = f"analysts-{airflow.major}", f"dana-{airflow.major}@corp.example"
    admin.create_role(theirs, set())
    admin._call("POST", f"{admin.fab}/users", "create_user", json={
        "username": holder, "email": holder, "first_name": "dana", "last_name": "x",
        "roles": [{"name": theirs}], "password": "not-used-Aa1!",
    })  # fmt: skip
    identity.set_groups(GROUPS)
    run(ledger=ledger)
    projects = make_config(airflow).model_dump()["projects"]
    projects["pricing"]["role"] = theirs
    for dry_run in (True, False):
        with pytest.raises(ChangesFailed, match=rf"role '{theirs}' exists and was not created"):
            run(make_config(airflow, projects=projects), ledger=ledger, dry_run=dry_run)
    assert admin.roles()[theirs] == set()  # untouched
    assert theirs in {u.email: u for u in admin.users()}[holder].roles
    assert sees(airflow, "alice@corp.example") == PRICING  # the project kept its old role
    assert "project-pricing" in admin.roles()

    adopting = make_config(airflow, projects=projects, adopt_roles=[theirs])
    dry = run(adopting, ledger=ledger, dry_run=True)
    assert any(f"adopting existing role '{theirs}' (holders: {holder})" in n for n in dry.notes)
    run(adopting, ledger=ledger)
    assert sees(airflow, "alice@corp.example") == PRICING
    assert theirs not in {u.email: u for u in admin.users()}[holder].roles
    # reverted while still listed: nobody holds it any more, and it is not deleted
    run(make_config(airflow, adopt_roles=[theirs]), ledger=ledger)
    assert theirs in admin.roles() and theirs not in ledger.owned()
    assert not [u.email for u in admin.users() if theirs in u.roles]
    assert sees(airflow, "alice@corp.example") == PRICING


def _account(admin: AirflowClient, username: str, email: str, roles: set[str]) -> None:
    """An account made by hand or registered by Composer (``accounts.google.com:<id>``)."""
    admin._call(
        "POST",
        f"{admin.fab}/users",
        "create_user",
        json={
            "username": username,
            "email": email,
            "first_name": username.split("@")[0][:20],
            "last_name": "-",
            "roles": [{"name": r} for r in sorted(roles)],
            "password": "unused-" + username[::-1],
        },
    )


def test_every_account_of_a_person_gets_exactly_the_persons_roles(airflow, identity, run):
    """Issue 25, defect 2: one person, several accounts (Composer's accounts.google.com:<id>,
    one made by hand with the email in another case). The email was lower-cased and sent back
    in each PATCH (Airflow: 409, the run failed), and only one account per email was
    managed: a twin kept Op or another project's role."""
    major = airflow.major
    person = f"tess-{major}@corp.example"
    composer, by_hand, old = (
        f"accounts.google.com:10{major}77",
        f"tess-hand-{major}",
        f"tess-old-{major}",
    )
    admin = _admin(airflow)
    identity.set_groups(GROUPS)
    run()
    _account(admin, composer, f"Tess-{major}@corp.example", {"Public"})
    _account(admin, by_hand, person, {"Op"})
    _account(admin, old, person.upper(), {"project-promotions"})
    assert sees(airflow, old) == PROMO
    identity.set_groups({**GROUPS, "pricing@corp.example": ["alice@corp.example", person]})

    reported = run()  # builtin_roles_of_members: report (the default)
    assert not reported.failures
    assert any(
        f"{person} ({', '.join(sorted([by_hand, composer, old]))})" in n for n in reported.notes
    )
    assert any(f"{person} as {by_hand} (Op)" in n for n in reported.notes)
    assert sees(airflow, composer) == PRICING
    assert sees(airflow, old) == PRICING  # the other project's role is gone
    assert sees(airflow, by_hand) >= ALL  # Op kept, and said so
    emails = {u.username: u.email for u in admin.users()}
    assert emails[composer] == f"Tess-{major}@corp.example"  # never rewritten
    assert emails[old] == person.upper()

    run(make_config(airflow, builtin_roles_of_members="remove"))
    roles = {u.username: u.roles for u in admin.users()}
    assert roles[by_hand] == {"project-pricing"} and sees(airflow, by_hand) == PRICING
    assert roles[composer] == {"Public", "project-pricing"}

    identity.set_groups(GROUPS)  # the person leaves every group: every account loses access
    left = run()
    assert not left.failures
    for account in (composer, by_hand, old):
        assert sees(airflow, account) == set()
    assert run().airflow_writes == 0


class _Overlap(requests.adapters.HTTPAdapter):
    """Run A's transport: logs A's requests; just before request number ``at`` it runs
    ``other`` (a whole run B), and right after A's next write it calls ``check``."""

    def __init__(self, at: int = 0, other=None, check=None):
        super().__init__()
        self.at, self.other, self.check = at, other, check
        self.log: list[str] = []
        self.state = "before"

    def send(self, request, **kwargs):
        if _signing_in(request):
            return super().send(request, **kwargs)
        self.log.append(f"{request.method} {request.path_url.split('?')[0]}")
        if len(self.log) == self.at:
            self.other()
            self.state = "overlapped"
        response = super().send(request, **kwargs)
        if self.state == "overlapped" and request.method != "GET":
            self.state = "checked"
            self.check()
        return response


def _steps(log: list[str]) -> list[int]:
    """Where another run can slip in: before each write, or before the read that guards it
    (A reads a role again just before deleting it; the two are one step)."""
    steps = []
    for i, call in enumerate(log, start=1):
        if call.startswith("GET"):
            continue
        guarded = call.startswith("DELETE") and log[i - 2] == "GET" + call.removeprefix("DELETE")
        steps.append(i - 1 if guarded else i)
    return steps


def test_two_runs_overlapping_at_every_step_of_a_role_switch_never_leave_members_without_access(
    airflow, identity, run
):
    """Issue 25, defect 1: run A, slow in its role switch on 2.10, deleted the role that run B
    had recreated meanwhile (B also retired A's stand-in): the project's members had no access
    until A gave the role back, or until the next run if A failed. Run B runs whole before each
    step of A's switch; right after A's next write every member still sees its DAGs, and the
    two end converged."""
    from shared.errors import PermanentError, TransientError

    identity.set_groups(GROUPS)
    narrow, kept = _narrowed(airflow), PRICING - {"elasticity_report"}
    members = ("alice@corp.example", "bob@corp.example")
    run()
    counting = _Overlap()
    session = requests.Session()
    session.mount("http://", counting)
    run(narrow, session=session)
    steps = _steps(counting.log)
    assert len(steps) >= (7 if airflow.major == 2 else 1), counting.log
    seen: list[tuple[int, str, set[str]]] = []

    def other() -> None:
        client = AirflowClient(airflow.url, username="admin", password=airflow.admin_password)
        sync(narrow, groups=GroupsReader(identity.service(), retries=0), airflow=client)

    for at in steps:
        run()  # back to the wide role
        check = lambda at=at: seen.extend((at, m, sees(airflow, m)) for m in members)  # noqa: E731
        overlap = _Overlap(at, other, check)
        session = requests.Session()
        session.mount("http://", overlap)
        # A may fail where B moved the state under it: the access is what counts
        with contextlib.suppress(PermanentError, TransientError):
            run(narrow, session=session)
        assert overlap.state != "before", (at, overlap.log)
        for member in members:
            assert sees(airflow, member) >= kept, (at, overlap.log[at - 1], member)
        run(narrow)
        for member in members:
            assert sees(airflow, member) == kept
        assert not [r for r in _admin(airflow).roles() if r.endswith("~next")]
        assert run(narrow).airflow_writes == 0
    without = [(at, member) for at, member, dags in seen if not dags >= kept]
    assert not without, without
    run()


def test_a_lost_ledger_stops_the_run_until_it_is_rebuilt(
    airflow, identity, run, tmp_path, capsys, monkeypatch
):
    """Issue 25, defect 3: with the ledger deleted, a project rename never retired the old
    role (its holders kept its DAGs) and the run exited 0 without a word."""
    import yaml

    from shared.cli import main
    from shared.errors import PermanentError
    from shared.rbac.ledger import FileRoleLedger

    state = tmp_path / "owned-roles.json"
    ledger = FileRoleLedger(str(state))
    ledger.add({"project-pricing", "project-promotions"})
    identity.set_groups(GROUPS)
    run(ledger=ledger)
    state.unlink()  # lost
    projects = make_config(airflow).model_dump()["projects"]
    projects["pricing"]["role"] = "pricing-renamed"
    renamed = make_config(airflow, projects=projects)
    before = _admin(airflow).roles()
    for dry_run in (True, False):
        with pytest.raises(PermanentError, match=r"ledger .*owned-roles.json is missing") as info:
            run(renamed, ledger=ledger, dry_run=dry_run)
    assert "project-promotions (project promotions's role)" in str(info.value)
    assert "retail rbac ledger rebuild" in str(info.value)
    assert _admin(airflow).roles() == before and not state.exists()  # nothing changed

    path = tmp_path / "rbac.yaml"
    path.write_text(yaml.safe_dump(renamed.model_dump(mode="json")))
    argv = ["rbac", "ledger", "rebuild", "--config", str(path), "--state", str(state)]
    assert main([*argv, "--role", "project-pricing"]) == 0  # a dry run
    out = capsys.readouterr().out
    assert re.search(r"project-pricing\s+named on the command line", out)
    assert "2 role(s) would be recorded" in out and not state.exists()
    assert main([*argv, "--role", "project-pricing", "--apply"]) == 0
    assert ledger.owned() == {"project-pricing", "project-promotions"}

    run(renamed, ledger=ledger)  # the old role is retired now
    assert "project-pricing" not in _admin(airflow).roles()
    assert sees(airflow, "alice@corp.example") == PRICING  # through pricing-renamed
    run(ledger=ledger)
    assert "pricing-renamed" not in _admin(airflow).roles()
    assert sees(airflow, "alice@corp.example") == PRICING


def test_a_run_that_finds_the_lease_held_changes_nothing_and_names_the_holder(
    airflow, identity, run, tmp_path
):
    """Issue 25, item 1: two runs at once (a tick and an operator's CLI) each made a switch."""
    from shared.rbac.lease import FileLease, LeaseHeld
    from shared.rbac.ledger import FileRoleLedger

    ledger = FileRoleLedger(str(tmp_path / "owned-roles.json"))
    ledger.add({"project-pricing", "project-promotions"})
    lease = FileLease(tmp_path / "owned-roles.json.lock")
    identity.set_groups({**GROUPS, "promo@corp.example": ["lee@corp.example"]})
    with FileLease(tmp_path / "owned-roles.json.lock").hold():
        with pytest.raises(LeaseHeld, match=r"holds the lock .*: \S+( rbac)? on \S+ pid \d+"):
            run(ledger=ledger, lease=lease)
        assert run.client.calls.reads == 0 and run.client.calls.writes == 0
        dry = run(ledger=ledger, lease=lease, dry_run=True)  # a dry run takes no lease
        assert any(c.target == "lee@corp.example" for c in dry.changes)
    run(ledger=ledger, lease=lease)
    assert sees(airflow, "lee@corp.example") == PROMO
