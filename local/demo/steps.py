"""The steps of the main job, each returning what it observed (the end-to-end test runs the
same steps and asserts)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.stack import REPO, StackConfig, down, up

AIRFLOW_VERSION = "2.10.5"
# The people of local/rbac/groups.yaml the demo follows.
PRICING_MEMBER = "paul@retail.example"
MOVER = "priya@retail.example"  # in pricing-analysts (nested in pricing-team), moves to promotions


def function_log_lines(cfg: StackConfig, entry_point: str, needle: str) -> list[dict]:
    """JSON log lines of a function process that mention ``needle``."""
    path = cfg.log_dir / f"function-{entry_point}.log"
    lines = []
    with contextlib.suppress(FileNotFoundError):
        for raw in Path(path).read_text(errors="replace").splitlines():
            if needle in raw and raw.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(raw))
    return lines


def wait_for(predicate, timeout_s: float = 30.0, every_s: float = 0.2):  # noqa: ANN001, ANN201
    """Poll ``predicate`` until it returns something truthy; returns it, or its last answer
    (one more look at the deadline) on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    return predicate()


class StepFailed(RuntimeError):
    """A step of the main job did not see what it expected; the message says what."""


# --------------------------------------------------------------------------- 1. stack


def start(cfg: StackConfig, airflow_port: int, airflow_home: Path | None = None,
          say: Callable[[str], None] = print) -> tuple[Any, StackConfig]:  # fmt: skip
    """Airflow first (the RBAC function needs its address and admin secret), then the stack."""
    from local.airflow import down as airflow_down
    from local.airflow import up as airflow_up
    from local.stack import check_ports, components, running_pgid

    # Every port of the stack first, naming who holds one: nothing is started when any is
    # taken (Airflow's own port is checked by airflow_up, which reuses only its own server).
    check_ports(cfg, [c for c in components() if running_pgid(cfg, c) is None])
    say(f"  Airflow {AIRFLOW_VERSION} on port {airflow_port} (installed once, ~1 min)")
    af = airflow_up(AIRFLOW_VERSION, airflow_port, airflow_home, say=lambda m: say(f"  {m}"))
    config = cfg.state_dir / "rbac.yaml"
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    example = (REPO / "local" / "rbac" / "rbac.yaml").read_text()
    config.write_text(example.replace("http://127.0.0.1:8280", af.url))
    # The sync_rbac function reads the config's location as Terraform's rbac_config_uri; the
    # password reaches it through the environment, as Secret Manager injects it in the cloud.
    cfg = dataclasses.replace(cfg, rbac_config=str(config))
    os.environ["AIRFLOW_PASSWORD"] = af.admin_password
    try:
        up(cfg, say=lambda m: say(f"  {m}"))
    except BaseException:
        down(cfg, say=lambda _m: None)  # whatever of the stack started, and Airflow
        airflow_down(af)
        raise
    os.environ.update(cfg.client_env())
    return af, cfg


# --------------------------------------------------------------------------- 2-3. data


def load_retailer(settings: Any, rows: int) -> dict:
    from shared.cli import generate_data

    return generate_data(rows, 7, settings.source_dataset.split(".")[1], settings, quiet=False)


def fetch(
    cfg: StackConfig, settings: Any, table: str, parallelism: int, timeout_s: float = 600
) -> dict:
    """A fetch request asking for both trainings, followed to its manifest; with the
    deliveries of each function meanwhile, those refused with 429 (retried), and the dead
    letters."""
    from tqdm import tqdm

    from local.stack import dead_letters, deliveries
    from shared.fetch.library import new_run_id, publish_and_follow
    from shared.messages import FetchRequest

    before, letters = deliveries(cfg), sum(dead_letters(cfg).values())

    run_id = new_run_id("main")
    request = FetchRequest(
        run_id=run_id,
        table=table,
        destination=settings.fetch_destination(run_id),
        parallelism=parallelism,
        train=["pricing", "promotions"],
    )
    t0 = time.perf_counter()
    with tqdm(unit="rows", unit_scale=True, file=sys.stderr, leave=False) as bar:
        manifest = publish_and_follow(request, settings, timeout_s=timeout_s, progress=bar)
    seconds = time.perf_counter() - t0
    after = deliveries(cfg)
    pushed = {
        f: {k: after[f][k] - before[f][k] for k in ("delivered", "refused_429")}
        | {"capacity": after[f]["capacity"]}
        for f in ("plan_fetch", "fetch_chunk", "finalize_fetch")
    }
    return {
        "run_id": run_id,
        "deliveries": pushed,
        "dead_letters": sum(dead_letters(cfg).values()) - letters,
        "destination": request.destination,
        "rows": manifest["rows"],
        "source_rows": manifest.get("source_rows", manifest["rows"]),
        "parts": len(manifest["parts"]),
        "bytes": manifest["bytes"],
        "chunks": manifest.get("chunk_count"),
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- 8. IAM


def check_iam(cfg: StackConfig) -> dict:
    """The calls each deployable made in this run (recorded per process) against what
    Terraform grants its service account in this environment."""
    from local import iam_contract

    report = iam_contract.check(cfg.trace_dir, cfg.environment, cfg.project)
    return {
        "deployables": sorted(report.deployables),
        "checks": sum(len(v) for v in report.checked.values()),
        "missing": [
            f"{n.deployable}: {n.method} needs {n.permission} on {n.scope} {n.target}"
            for n in report.missing
        ]
        + report.unmapped,
        "unused_grants": [list(u) for u in report.unused],
    }


# --------------------------------------------------------------------------- 4. training


def training(cfg: StackConfig, settings: Any, run_id: str, timeout_s: float = 900) -> dict:
    """Wait for both training executions of ``run_id``; then read what they wrote."""
    from shared import clients
    from shared.training.artifacts import ArtifactLayout

    executions = cfg.state_dir / "cloud-run" / "executions"

    def finished() -> dict[str, dict] | None:
        found: dict[str, dict] = {}
        for path in executions.glob("*.json"):
            with contextlib.suppress(ValueError):
                record = json.loads(path.read_text())
                if record.get("run_id") == run_id and record.get("done"):
                    found[record["job"].removeprefix(settings.prefix)] = record
        return found if {"pricing", "promotions"} <= set(found) else None

    records = wait_for(finished, timeout_s=timeout_s, every_s=1.0)
    if not records:
        raise StepFailed(f"training of {run_id} did not finish in {timeout_s:.0f} s")
    # Side effects counted, not only results: the Admin API's executions of each job that ran
    # with this run id (fetch-complete may have been delivered more than once).
    from shared.training.launch import executions_of_run, job_name

    runs = clients.executions_client(settings)
    counts = {
        job: len(
            executions_of_run(
                runs, job_name(settings.project, settings.region, settings.prefix, job), run_id
            )
        )
        for job in records
    }
    if any(n != 1 for n in counts.values()):
        raise StepFailed(f"run {run_id} started {counts} executions; exactly one per job expected")
    failed = [job for job, r in records.items() if not r["succeeded"]]
    if failed:
        raise StepFailed(f"training job(s) {failed} failed; logs in {executions}")
    bq = clients.bigquery_client(settings)
    pricing = list(
        bq.query(
            "SELECT status, COUNT(*) AS n FROM "
            f"`{settings.project}.{settings.results_dataset}.pricing` "
            f"WHERE run_id = '{run_id}' GROUP BY status ORDER BY status"
        ).result()
    )
    artifacts = ArtifactLayout.of(settings.artifacts)
    bucket = clients.storage_client(settings).bucket(artifacts.root.bucket)
    scores = json.loads(bucket.blob(artifacts.scores(run_id).path).download_as_text())
    return {
        "executions": {
            job: {"tasks": len(r["tasks"]), "seconds": r["seconds"], "executions": counts[job]}
            for job, r in records.items()
        },
        "pricing_rows": {row["status"]: row["n"] for row in pricing},
        "promotion_scores": scores,
        "artifacts": sorted(
            f"gs://{b.bucket.name}/{b.name}"
            for b in bucket.list_blobs(prefix=artifacts.root.path)
            if run_id in b.name
        ),
    }


# --------------------------------------------------------------------------- 5. API


def ask_api(cfg: StackConfig, settings: Any, run_id: str, timeout_s: float = 60) -> dict:
    """Wait until the API serves ``run_id``'s models; ask for prices and a planned promotion."""
    import requests

    from shared import clients

    api = cfg.client_env()["RETAIL_API_URL"]

    def serving() -> dict | None:
        with contextlib.suppress(requests.RequestException):
            ready = requests.get(f"{api}/readyz", timeout=5)
            body = ready.json() if ready.status_code == 200 else {}
            if body.get("pricing_run_id") == run_id and body.get("promotions_run_id") == run_id:
                return body
        return None

    if not wait_for(serving, timeout_s=timeout_s, every_s=0.5):
        raise StepFailed(f"the API did not pick up the models of {run_id} in {timeout_s:.0f} s")
    answered = requests.get(f"{api}/v1/prices", params={"limit": 500}, timeout=10)
    if answered.status_code != 200:
        raise StepFailed(f"GET /v1/prices answered {answered.status_code}: {answered.text[:300]}")
    prices = answered.json()
    estimated = [p for p in prices["items"] if p["status"] == "ok"]
    estimated.sort(key=lambda p: (p.get("rank") is None, p.get("rank") or 0))
    bq = clients.bigquery_client(settings)
    top = next(
        iter(
            bq.query(
                f"SELECT product_id, SUM(revenue) AS revenue FROM `{settings.source_dataset}."
                "transactions` GROUP BY product_id ORDER BY revenue DESC LIMIT 1"
            ).result()
        )
    )
    plan = {
        "product_id": top["product_id"],
        "mechanic": "tpr",
        "discount": 0.2,
        "start_date": "2025-03-03",
        "duration_days": 7,
        "feature": True,
    }
    answer = requests.post(f"{api}/v1/promotions:predict", json=plan, timeout=10)
    if answer.status_code != 200:
        raise StepFailed(f"the API refused a planned promotion: {answer.text}")
    analytics = requests.get(
        f"{api}/v1/promotions/analytics",
        params={"product_id": top["product_id"], "limit": 3},
        timeout=30,
    )
    return {
        **store_lists(api),
        "prices": estimated[:3],
        "products_priced": prices["total"],
        "plan": plan,
        "prediction": answer.json(),
        "past_promotions": analytics.json().get("items", []),
    }


def store_lists(api: str) -> dict:
    """A store manager's price list (the store with the most zone prices) and the zones of
    the product whose zones gain the most."""
    import requests

    zoned = requests.get(f"{api}/v1/prices", params={"zone": 1, "limit": 500}, timeout=10)
    if zoned.status_code != 200:
        raise StepFailed(f"GET /v1/prices?zone=1 answered {zoned.status_code}: {zoned.text[:300]}")
    items = zoned.json()["items"]
    if not items:
        return {"store": None, "store_prices": [], "zones": None}
    stores = Counter(p["store_id"] for p in items)
    store = stores.most_common(1)[0][0]
    listed = requests.get(
        f"{api}/v1/prices", params={"store": store, "order": "rank", "limit": 500}, timeout=10
    ).json()
    gains: Counter[int] = Counter()
    for p in items:
        gains[p["product_id"]] += p["expected_gain"] or 0.0
    product = gains.most_common(1)[0][0]
    zones = requests.get(f"{api}/v1/prices/{product}/zones", timeout=10).json()
    return {"store": store, "store_prices": listed["items"], "store_total": listed["total"],
            "zones": zones}  # fmt: skip


# --------------------------------------------------------------------------- 6. RBAC


def rbac_tick(cfg: StackConfig, settings: Any, timeout_s: float = 120) -> dict:
    """Publish a Scheduler tick on rbac-sync; wait for the function's report of that tick."""
    from shared import clients, topology

    reason = f"tick {uuid.uuid4().hex[:6]}"
    publisher = clients.publisher_client(settings)
    publisher.publish(
        publisher.topic_path(settings.project, settings.topic(topology.RBAC_SYNC)),
        json.dumps({"reason": reason}).encode(),
    ).result()
    lines = wait_for(
        lambda: function_log_lines(cfg, "sync_rbac", f"rbac sync ({reason})"),
        timeout_s=timeout_s,
        every_s=0.5,
    )
    if not lines:
        raise StepFailed(f"the RBAC reconcile did not report within {timeout_s:.0f} s")
    return {"changes": lines[-1].get("changes", 0)}


def move_person(cfg: StackConfig, who: str, to_group: str) -> None:
    """Change a group membership on the local Cloud Identity server, as an admin would."""
    import requests
    import yaml

    url = cfg.client_env()["CLOUD_IDENTITY_EMULATOR_HOST"]
    seed = yaml.safe_load((REPO / "local" / "rbac" / "groups.yaml").read_text())["groups"]
    groups = {g: [m for m in members if m != who] for g, members in seed.items()}
    groups[to_group].append(who)
    requests.put(f"{url}/_admin/groups", json={"groups": groups}, timeout=5).raise_for_status()


def access(cfg: StackConfig, settings: Any, af: Any) -> dict:
    from local.airflow import visible_dags

    first = rbac_tick(cfg, settings)
    before = {who: visible_dags(af, who) for who in (PRICING_MEMBER, MOVER)}
    move_person(cfg, MOVER, "promo-team@retail.example")
    second = rbac_tick(cfg, settings)
    after = visible_dags(af, MOVER)
    return {
        "first_changes": first["changes"],
        "before": before,
        "second_changes": second["changes"],
        "after": after,
    }


# --------------------------------------------------------------------------- 7. report


def save_report(settings: Any, run_id: str, out_dir: Path) -> Path:
    from shared import clients

    blob = clients.storage_client(settings).bucket(settings.data_bucket).blob(
        f"training/pricing/{run_id}/report.html"
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{run_id}.html"
    path.write_text(blob.download_as_text())
    return path
