"""The desk's price review page for 2,000 products on the local stack (decisions on the GCS
emulator), rendered through Flask as a category manager asks for it: the first render of a
process (every decision downloaded) beside later ones (a listing, the new decisions only).

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

    cold = [render(client_for(DecisionLedger(gcs, settings.data_bucket, prefix)))
            for _ in range(3)]  # fmt: skip
    warm_client = client_for(DecisionLedger(gcs, settings.data_bucket, prefix))
    render(warm_client)
    warm = [render(warm_client) for _ in range(args.repeats)]
    print(f"\nreview page: {args.products:,} products, {args.decisions:,} decisions")
    print(f"{'render':<46}{'median s':>10}{'max s':>8}")
    print(f"{'first in a process (every decision downloaded)':<46}"
          f"{statistics.median(cold):>10.3f}{max(cold):>8.3f}")  # fmt: skip
    print(f"{'later (a listing, new decisions only)':<46}"
          f"{statistics.median(warm):>10.3f}{max(warm):>8.3f}")  # fmt: skip
    print(f"{'speed-up':<46}{statistics.median(cold) / statistics.median(warm):>9.1f}x"
          "   target: < 1 s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
