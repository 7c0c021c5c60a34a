"""The desk's price review page for 2,000 products on the local stack (decisions on the GCS
emulator), rendered through Flask as a category manager asks for it: the first render of a
process, with claims written before their decision was kept in their metadata (each
downloaded: one by one, the baseline, and 16 at a time) and as written now (one listing),
beside later renders (a listing, the new decisions only).

    .venv/bin/python -m bench.desk_load [--products 2000] [--decisions 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import time
import uuid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--decisions", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    from local.stack import StackConfig, up
    from shared import clients
    from shared.api.app import create_app
    from shared.api.models import PricingModel
    from shared.desk.access import DeskAccess, grants
    from shared.desk.decisions import Decision, DecisionLedger
    from shared.desk.web import Desk, Identity
    from shared.settings import Settings
    from shared.training.pricing import Rules

    cfg = StackConfig.from_env()
    up(cfg, say=lambda _m: None)
    settings = Settings.from_env(cfg.client_env())
    gcs = clients.storage_client(settings)
    products = {
        p: {"product_id": p, "status": "ok", "category": "dairy", "regular_price": 2.49,
            "recommended_price": 2.29, "unit_cost": 1.5, "objective": "profit",
            "decision": "move", "reason_code": "move", "reason": "profit +1.00 a week",
            "expected_gain": float(p % 97), "gain_low": 0.5, "gain_high": 2.0,
            "elasticity": -2.4, "ci_low": -3.0, "ci_high": -1.8, "binding_rule": None}
        for p in range(1, args.products + 1)
    }  # fmt: skip
    model = PricingModel("bench-desk", "gs://b/x", products, rules={"*": Rules()})
    prefix = f"bench-desk-{uuid.uuid4().hex[:6]}/decisions"
    writer = DecisionLedger(gcs, settings.data_bucket, prefix)
    for p in range(1, args.decisions + 1):
        writer.decide(Decision(run_id="bench-desk", product_id=p, action="approve", price=2.29,
                               decided_by="paul@retail.example", decided_at=dt.datetime.now(dt.UTC),
                               request_id=f"bench-{p:08d}"))  # fmt: skip
    # The baseline: the same claims as they were written before the decision was kept in their
    # metadata (each must be downloaded).
    plain = f"bench-desk-{uuid.uuid4().hex[:6]}/decisions"
    bucket = gcs.bucket(settings.data_bucket)
    for blob in gcs.list_blobs(bucket, prefix=f"{prefix}/"):
        copy = bucket.blob(blob.name.replace(prefix, plain, 1))
        copy.upload_from_string(blob.download_as_bytes(), content_type="application/json")
    access = DeskAccess(category_managers={"dairy@retail.example": ["dairy"]})
    people = grants(access, {"dairy@retail.example": {"paul@retail.example"}})

    class Models:
        pricing = model

        def catch_up(self) -> None:
            pass

    def client_for(ledger: DecisionLedger):
        desk = Desk(Models(), ledger, Identity(development=True), lambda: people)  # type: ignore[arg-type]
        app = create_app(Models(), desk=desk, secret_key="bench" * 8)  # type: ignore[arg-type]
        client = app.test_client()
        page = client.get("/desk/sign-in").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        client.post("/desk/sign-in", data={"email": "paul@retail.example", "csrf_token": token})
        return client

    def render(client) -> float:
        t0 = time.perf_counter()
        response = client.get("/desk/prices")
        assert (
            response.status_code == 200
            and response.get_data(as_text=True).count("<tr id=") == args.products
        )
        return time.perf_counter() - t0

    serial = [render(client_for(DecisionLedger(gcs, settings.data_bucket, plain, readers=1)))
              for _ in range(3)]  # fmt: skip
    parallel = [render(client_for(DecisionLedger(gcs, settings.data_bucket, plain)))
                for _ in range(3)]  # fmt: skip
    cold = [render(client_for(DecisionLedger(gcs, settings.data_bucket, prefix)))
            for _ in range(3)]  # fmt: skip
    warm_client = client_for(DecisionLedger(gcs, settings.data_bucket, prefix))
    render(warm_client)
    warm = [render(warm_client) for _ in range(args.repeats)]
    print(f"\nreview page: {args.products:,} products, {args.decisions:,} decisions")
    print(f"{'render':<46}{'median s':>10}{'max s':>8}")
    rows = [("first, claims downloaded one by one (before)", serial),
            ("first, claims downloaded 16 at a time", parallel),
            ("first, decisions read from the listing (now)", cold),
            ("later (a listing, new decisions only)", warm)]  # fmt: skip
    for name, times in rows:
        print(f"{name:<46}{statistics.median(times):>10.3f}{max(times):>8.3f}")
    ratio = statistics.median(serial) / statistics.median(cold)
    print(f"{'first render, before / now':<46}{ratio:>9.1f}x   target: < 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
