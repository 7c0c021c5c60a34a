"""Nobody sees or decides outside their grant: each test tries to cross one."""

import re

import pytest

from shared.desk.web import Identity

from .conftest import write_runs

pytestmark = pytest.mark.stack


def signed_in(app, email):
    client = app.test_client()
    page = client.get("/desk/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/desk/sign-in", data={"email": email, "csrf_token": token})
    return client, token


def decide(client, token, pid, action, request_id, **fields):
    data = {"action": action, "csrf_token": token, "request_id": request_id, **fields}
    return client.post(f"/desk/prices/{pid}/decision", data=data)


def test_a_category_manager_sees_and_decides_only_their_categories(desk):
    client, token = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/prices").get_data(as_text=True)
    assert 'id="product-1"' in page and 'id="product-4"' not in page  # bakery is not his
    assert decide(client, token, 4, "approve", "try-bakery-0001").status_code == 403
    assert decide(client, token, 1, "approve", "dairy-approve-01").status_code == 302
    page = client.get("/desk/prices").get_data(as_text=True)
    assert "approve at 2.29" in page and "by paul@retail.example" in page


def test_a_store_manager_cannot_decide_and_sees_only_their_store(desk):
    client, token = signed_in(desk, "sam@retail.example")
    assert client.get("/desk/prices").status_code == 403
    assert decide(client, token, 1, "approve", "store-try-0001").status_code == 403
    assert client.get("/desk/stores/1").status_code == 200
    assert client.get("/desk/stores/2").status_code == 403
    assert client.get("/desk/stores/2.csv").status_code == 403


def test_a_reader_sees_everything_and_decides_nothing(desk):
    client, token = signed_in(desk, "fin@retail.example")
    page = client.get("/desk/prices").get_data(as_text=True)
    assert 'id="product-4"' in page and "read only" in page and "Approve" not in page
    assert decide(client, token, 1, "approve", "reader-try-0001").status_code == 403
    assert client.get("/desk/stores/2").status_code == 200


def test_someone_in_no_desk_group_and_someone_signed_out_get_nothing(desk):
    client, token = signed_in(desk, "stranger@retail.example")
    assert client.get("/desk/prices").status_code == 403
    assert decide(client, token, 1, "approve", "stranger-try-01").status_code == 403
    anonymous = desk.test_client()
    assert anonymous.get("/desk/prices").status_code == 302  # to the sign-in
    assert anonymous.post("/desk/prices/1/decision", data={"action": "approve"}).status_code == 302


def test_forms_without_their_csrf_token_or_with_a_price_the_rules_refuse_are_refused(desk):
    client, token = signed_in(desk, "paul@retail.example")
    refused = decide(client, "forged", 1, "approve", "csrf-try-000001")
    assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    wrong = decide(client, token, 1, "override", "override-bad-01", price="9.99")
    assert wrong.status_code == 400 and "not allowed" in wrong.get_data(as_text=True)
    assert decide(client, token, 1, "override", "override-ok-001", price="2.49").status_code == 302


def test_the_second_manager_sees_the_decision_that_won(desk):
    first, first_token = signed_in(desk, "paul@retail.example")
    second, second_token = signed_in(desk, "paul@retail.example")  # another tab, a new session
    assert decide(first, first_token, 2, "approve", "tab-one-000001").status_code == 302
    lost = decide(second, second_token, 2, "reject", "tab-two-000001")
    assert lost.status_code == 409 and "approve at 3.79" in lost.get_data(as_text=True)
    again = decide(first, first_token, 2, "approve", "tab-one-000001")  # a double click
    assert again.status_code == 302


def test_development_sign_in_is_refused_off_the_local_stack_and_iap_needs_its_audience():
    with pytest.raises(RuntimeError, match="outside the local stack"):
        Identity.for_deployment(local=False, audience=None, development=True)
    with pytest.raises(RuntimeError, match="audience"):
        Identity.for_deployment(local=False, audience=None, development=False)
    found = Identity.for_deployment(local=False, audience="/projects/1/apps/p", development=False)
    assert not found.development


def test_behind_iap_only_a_signed_assertion_gets_in(stack, settings):
    """The desk behind IAP: no header or a forged one is 401; Google's (here: keys served in
    IAP's JWK format from a local address) lets its person in, by their grant."""
    import json
    import threading
    import time
    import uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from shared import clients
    from shared.api.app import create_app
    from shared.desk.access import IAP_HEADER, IAP_ISSUER, grants
    from shared.desk.decisions import DecisionLedger
    from shared.desk.web import Desk

    from .conftest import ACCESS, MEMBERS, run_model

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "k1",
           "alg": "ES256"}  # fmt: skip
    body = json.dumps({"keys": [jwk]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    audience = "/projects/123/global/backendServices/456"
    gcs = clients.storage_client(settings)
    from shared.api.models import ModelStore
    from shared.training.artifacts import Keyring

    artifacts = f"gs://{settings.data_bucket}/artifacts-desk"
    store = ModelStore(gcs, Keyring.parse(f"k1:{Keyring.new_key()}"), artifacts)
    store.pricing = run_model()
    identity = Identity(audience=audience, certs_url=f"http://127.0.0.1:{server.server_port}/")
    ledger = DecisionLedger(gcs, settings.data_bucket, f"desk-{uuid.uuid4().hex[:6]}/d")
    app = create_app(store, desk=Desk(store, ledger, identity, lambda: grants(ACCESS, MEMBERS)),
                     secret_key="s" * 32)  # fmt: skip
    client = app.test_client()
    now = int(time.time())

    def assertion(email, signer=key):
        claims = {"iss": IAP_ISSUER, "aud": audience, "email": email, "iat": now,
                  "exp": now + 300}  # fmt: skip
        return jwt.encode(claims, signer, algorithm="ES256", headers={"kid": "k1"})

    try:
        assert client.get("/desk/prices").status_code == 401
        forged = assertion("paul@retail.example", ec.generate_private_key(ec.SECP256R1()))
        assert client.get("/desk/prices", headers={IAP_HEADER: forged}).status_code == 401
        unsigned_email = {
            "x-goog-authenticated-user-email": "accounts.google.com:paul@retail.example"
        }
        assert client.get("/desk/prices", headers=unsigned_email).status_code == 401
        paul = {IAP_HEADER: assertion("paul@retail.example")}
        page = client.get("/desk/prices", headers=paul)
        assert page.status_code == 200 and 'id="product-1"' in page.get_data(as_text=True)
        sam = {IAP_HEADER: assertion("sam@retail.example")}
        assert client.get("/desk/prices", headers=sam).status_code == 403
        assert client.get("/desk/sign-in").status_code == 404  # no development sign-in here
    finally:
        server.shutdown()


def test_an_analyst_plans_but_neither_decides_prices_nor_sees_store_lists(desk):
    client, token = signed_in(desk, "maria@retail.example")
    assert client.get("/desk/promotions").status_code == 200
    assert client.get("/desk/prices").status_code == 403
    assert decide(client, token, 1, "approve", "analyst-try-01").status_code == 403
    assert client.get("/desk/stores/1").status_code == 403
    bad = client.post(
        "/desk/promotions",
        data={
            "csrf_token": token,
            "product_id": "1",
            "mechanic": "raffle",
            "discount": "20",
            "start_date": "2026-12-07",
            "duration_days": "7",
        },
    )
    assert bad.status_code == 400 and "mechanic" in bad.get_data(as_text=True)
    paul, paul_token = signed_in(desk, "paul@retail.example")
    plan = {
        "csrf_token": paul_token,
        "product_id": "1",
        "mechanic": "tpr",
        "discount": "20",
        "start_date": "2026-12-07",
        "duration_days": "7",
    }
    assert paul.post("/desk/promotions", data=plan).status_code == 403


def test_a_selection_is_checked_whole_before_anything_is_decided(desk):
    paul, token = signed_in(desk, "paul@retail.example")
    data = {"csrf_token": token, "request_id": "bulk-00000001", "action": "approve"}
    # Product 4 is bakery's: the whole selection is refused and nothing is decided.
    refused = paul.post("/desk/prices/decisions", data={**data, "product_id": ["1", "4"]})
    assert refused.status_code == 403 and "product 4" in refused.get_data(as_text=True)
    page = paul.get("/desk/prices").get_data(as_text=True)
    assert "approve at" not in page
    # Another manager decided product 2 first: the selection decides the rest, names it.
    bea_like, other_token = signed_in(desk, "paul@retail.example")
    assert decide(bea_like, other_token, 2, "reject", "first-000000001").status_code == 302
    done = paul.post("/desk/prices/decisions", data={**data, "product_id": ["1", "2", "5"]},
                     follow_redirects=True).get_data(as_text=True)  # fmt: skip
    assert "2 of 3 products approved" in done and "decided first by someone else: 2" in done
    assert "approve at 2.29" in done and "approve at 4.29" in done
    override = paul.post("/desk/prices/decisions", data={**data, "action": "override",
                                                        "product_id": ["3"]})  # fmt: skip
    assert override.status_code == 400


def test_an_older_runs_decisions_stay_and_the_page_shows_what_changed(desk):
    import datetime as dt

    from shared.desk.decisions import Decision

    ledger = desk.config["TEST_LEDGER"]
    for pid, price in ((1, 2.49), (2, 3.79)):  # last month: product 1 kept, product 2 raised
        made = dt.datetime.now(dt.UTC)
        ledger.decide(Decision(run_id="run-desk-0", product_id=pid, action="approve",
                               price=price, decided_by="bea@retail.example", decided_at=made,
                               request_id=f"old-run-{pid:06d}"))  # fmt: skip
    client, token = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/prices").get_data(as_text=True)
    assert "run-desk-0" in page
    row_1 = page[page.index('id="product-1"') : page.index('id="product-2"')]
    row_2 = page[page.index('id="product-2"') : page.index('id="product-5"')]
    assert "last run: approve at 2.49" in row_1 and "the recommendation changed" in row_1
    assert "last run: approve at 3.79" in row_2 and "changed" not in row_2
    assert decide(client, token, 1, "approve", "new-run-000001").status_code == 302
    assert ledger.of_run("run-desk-0")["1"].price == 2.49  # the older run's stays
    assert ledger.of_run("run-desk-1")["1"].price == 2.29


def test_the_runs_page_shows_each_runs_state_and_is_not_for_store_managers(desk, settings):
    write_runs(settings, desk.config["TEST_FETCH_ROOT"])
    client, _ = signed_in(desk, "paul@retail.example")
    page = client.get("/desk/runs").get_data(as_text=True)
    assert 'class="run complete"><th scope="row">run-complete' in page and "1,234" in page
    assert "query: column x not found" in page and 'class="run failed"' in page
    assert 'class="run running"><th scope="row">run-going' in page and "3 chunks" in page
    sam, _ = signed_in(desk, "sam@retail.example")
    assert sam.get("/desk/runs").status_code == 403


def test_on_the_desks_own_service_iap_users_reach_no_json_api(desk):
    """Deployed, the desk is a service of its own behind IAP (RETAIL_DESK_ONLY): anyone IAP
    lets through would otherwise read every category's and store's prices from /v1."""
    from shared.api.app import create_app

    served = desk.config["TEST_DESK"]
    only = create_app(served.store, desk=served, secret_key="k" * 32, api=False)
    client, _ = signed_in(only, "sam@retail.example")
    assert client.get("/v1/prices?store=2").status_code == 404
    assert client.get("/openapi.json").json["paths"].keys() == {"/healthz", "/readyz"}
    assert client.get("/desk/stores/1").status_code == 200
    assert client.get("/desk/stores/2").status_code == 403
    assert only.test_client().get("/healthz").status_code == 200


def test_the_runs_page_shows_training_runs_as_cloud_run_tells_them(desk, settings):
    """A training run that cannot start (no manifest): running, then failed with the reason
    the Admin API gives, its seconds and cost."""
    import uuid

    from shared.fetch.layout import RunLayout
    from shared.training.launch import Launcher, launch

    from ..integration.helpers import wait_for

    run_id = f"desk-bad-{uuid.uuid4().hex[:6]}"
    nothing = str(RunLayout.of(settings.fetch_destination("nothing-here")).manifest)
    assert launch("promotions", run_id, nothing, Launcher.of(settings)) is not None
    client, _ = signed_in(desk, "fin@retail.example")

    def row():
        page = client.get("/desk/runs").get_data(as_text=True)
        found = re.search(rf'<tr class="training (\w+)"><th scope="row">promotions</th>'
                          rf"<td>{run_id}</td>.*?</tr>", page, re.S)  # fmt: skip
        return found

    assert row() is not None  # listed from the moment it started
    ended = wait_for(lambda: (r := row()) is not None and r.group(1) != "running" and r,
                     timeout_s=120)  # fmt: skip
    assert ended and ended.group(1) == "failed", ended
    assert "Task 0 failed: the container exited with code 2" in ended.group(0)
    cells = re.findall(r"<td>([^<]*)</td>", ended.group(0))
    seconds, cost = float(cells[-2]), float(cells[-1])
    assert seconds > 0 and cost == pytest.approx(seconds * (2 * 0.000018 + 4 * 0.000002), abs=5e-6)


def test_the_runs_page_says_when_cloud_run_cannot_be_read(desk):
    """A refused or missing job (a grant not yet propagated, say) is named on the page; the
    fetch runs still show."""
    import dataclasses

    from shared.api.app import create_app
    from shared.desk.runs import TrainingJobs

    served = desk.config["TEST_DESK"]
    missing = served.training.jobs["pricing"].replace("/jobs/", "/jobs/no-such-")
    broken = dataclasses.replace(
        served, training=TrainingJobs(served.training.client, {"pricing": missing}, {})
    )
    app = create_app(served.store, desk=broken, secret_key="k" * 32)
    client, _ = signed_in(app, "fin@retail.example")
    page = client.get("/desk/runs")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="training-unavailable"' in text and "404" in text and 'id="runs"' in text
