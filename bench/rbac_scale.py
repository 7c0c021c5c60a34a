"""RBAC at the size of an organisation, against a real Airflow, with API calls counted.

    .venv/bin/python -m bench.rbac_scale [--versions 2.10.5,3.3.2] [--projects 50] [--users 2000]

Generates the groups (each user in one or two of 50 project groups, an "everyone" group
holding all of them, a few admins, nested groups) on a local Cloud Identity server and 2 DAGs
per project, and runs as the scheduled function does (a desired-state digest, a ledger, a
lease): the first sync where every account must be created (Airflow hashes a password for
each), the first sync where Composer's sign-in registered everyone already (no password; the
usual case in a running environment), a run with no change, one after 1% of the members
moved, and the "everyone" role losing a DAG (a role switch with every user as a holder: on
2.10 two writes per holder). Each contender gets fresh Airflows (web server with Airflow's
default 4 workers): **sequential** (one write and one group read at a time, as before this
issue) beside **concurrent** (``max_concurrent_writes`` users' writes in flight, groups read
in parallel). Prints wall time, changes, Groups API calls and Airflow reads and writes of
each run, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from pathlib import Path

CREATED = "first sync, every account created"
RUNS = (
    CREATED,
    "first sync, accounts registered by Composer",
    "no change",
    "1% of members moved",
    "role switch, every user a holder",
)


class MemoryDigest:
    """The digest store, in memory (the function keeps it on GCS)."""

    def __init__(self) -> None:
        self.value: str | None = None

    def get(self) -> str | None:
        return self.value

    def put(self, digest: str) -> None:
        self.value = digest


def world(projects: int, users: int, seed: int = 7):
    rng = random.Random(seed)
    names = [f"p{i:02d}" for i in range(projects)]
    people = [f"user{i:05d}@corp.example" for i in range(users)]
    groups: dict[str, list[str]] = {f"{p}@corp.example": [] for p in names}
    for person in people:
        for p in rng.sample(names, rng.choice([1, 1, 2])):
            groups[f"{p}@corp.example"].append(person)
    for p in names[:10]:  # a nested "leads" group in ten projects
        leads = f"{p}-leads@corp.example"
        groups[leads] = groups[f"{p}@corp.example"][:3]
        groups[f"{p}@corp.example"].append(leads)
    groups["everyone@corp.example"] = list(people)
    groups["admins@corp.example"] = people[:5]
    dags = {f"{p}_{k}": [p] for p in [*names, "all"] for k in ("daily", "weekly")}
    moved = {g: list(m) for g, m in groups.items()}
    for person in rng.sample(people[5:], users // 100):
        for group, members in moved.items():
            if person in members and group != "everyone@corp.example":
                members.remove(person)
        moved[f"{rng.choice(names)}@corp.example"].append(person)
    return names, groups, moved, dags


def config_for(af, names: list[str], workers: int, everyone_dags: dict):
    from shared.rbac.config import parse_config

    projects = {
        p: {
            "role": f"project-{p}",
            "groups": [f"{p}@corp.example"],
            "dags": {"prefixes": [f"{p}_"]},
        }
        for p in names
    }
    projects["everyone"] = {
        "role": "project-everyone",
        "groups": ["everyone@corp.example"],
        "dags": everyone_dags,
    }
    return parse_config(
        {
            "airflow": {
                "url": af.url,
                "auth": {"type": "basic", "username": "admin", "password_env": "AIRFLOW_SCALE_PW"},
            },
            "admin_groups": ["admins@corp.example"],
            "projects": projects,
            "allow_list": ["admin@example.com"],
            "max_revocations": 100,
            "max_concurrent_writes": workers,
        }
    )


def register(af, people: list[str]) -> None:
    """The people's accounts as Composer's Google sign-in leaves them: username
    ``accounts.google.com:<id>``, no password, the registration role (set-up, not timed:
    written straight into Airflow's database, as no API registers a password-less user)."""
    import sqlite3
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(af.home / "airflow.db") as db:
        [(public,)] = db.execute("SELECT id FROM ab_role WHERE name = 'Public'").fetchall()
        for i, person in enumerate(people):
            cursor = db.execute(
                "INSERT INTO ab_user (first_name, last_name, username, email, active, "
                "created_on, changed_on) VALUES (?, '-', ?, ?, 1, ?, ?)",
                (person.split("@")[0], f"accounts.google.com:{10**15 + i}", person, now, now),
            )
            db.execute(
                "INSERT INTO ab_user_role (user_id, role_id) VALUES (?, ?)",
                (cursor.lastrowid, public),
            )


def contender(
    version: str, port: int, label: str, concurrency: int, args, server, registered: bool
) -> list[tuple]:
    """On a fresh Airflow: the first sync that creates every account, or (``registered``)
    the first sync over accounts Composer registered and every later run; a row per run."""
    import requests

    from local.airflow import down, up
    from shared.clients import cloud_identity_service
    from shared.rbac.airflow import AirflowClient
    from shared.rbac.groups import GroupsReader
    from shared.rbac.lease import FileLease
    from shared.rbac.ledger import FileRoleLedger
    from shared.rbac.sync import sync
    from shared.settings import Settings

    names, groups, moved, dags = world(args.projects, args.users)
    identity = Settings(
        project="rbac-scale", cloud_identity_emulator_host=f"http://127.0.0.1:{server.server_port}"
    )
    home = Path(tempfile.mkdtemp(prefix=f"rbac-scale-{version}-"))
    af = up(version, port, home, dags=dags, workers=args.webserver_workers, say=lambda _m: None)
    os.environ["AIRFLOW_SCALE_PW"] = af.admin_password
    wide = config_for(af, names, concurrency, {"prefixes": ["all_"]})
    narrow = config_for(af, names, concurrency, {"ids": ["all_daily"]})
    digests, ledger = MemoryDigest(), FileRoleLedger(str(home / "owned-roles.json"))
    lease = FileLease(home / "owned-roles.json.lock")
    rows = []

    def run(name: str, config) -> None:
        client = AirflowClient(af.url, username="admin", password=af.admin_password)
        reader = GroupsReader(cloud_identity_service(identity), workers=concurrency)
        t0 = time.perf_counter()
        result = sync(
            config, groups=reader, airflow=client, digests=digests, ledger=ledger, lease=lease
        )
        seconds = time.perf_counter() - t0
        rows.append((version, label, name, seconds, len(result.changes), result.group_calls,
                     result.airflow_reads, result.airflow_writes))  # fmt: skip
        print(f"  {version} {label:<11} {name:<34} {seconds:8.1f} s", flush=True)

    def set_groups(found: dict) -> None:
        url = f"http://127.0.0.1:{server.server_port}/_admin/groups"
        requests.put(url, json={"groups": found}, timeout=10)

    try:
        set_groups(groups)
        if not registered:
            run(CREATED, wide)
            return rows
        register(af, [p for p in groups["everyone@corp.example"]])
        run(RUNS[1], wide)
        run(RUNS[2], wide)
        set_groups(moved)
        run(RUNS[3], wide)
        run(RUNS[4], narrow)
    finally:
        down(af)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", default="2.10.5,3.3.2")
    parser.add_argument("--port", type=int, default=18380)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrent_writes")
    parser.add_argument("--webserver-workers", type=int, default=4)
    args = parser.parse_args(argv)

    from werkzeug.serving import make_server

    from local.cloud_identity import create_app

    server = make_server("127.0.0.1", 0, create_app({}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rows: list[tuple] = []
    try:
        for version in args.versions.split(","):
            for label, concurrency in (("sequential", 1), ("concurrent", args.concurrency)):
                print(f"Airflow {version}, {label} ...", flush=True)
                for registered in (False, True):
                    rows += contender(
                        version, args.port, label, concurrency, args, server, registered
                    )
    finally:
        server.shutdown()
    print(
        f"\n{args.users:,} users, {args.projects} projects (+ everyone), Airflow web server "
        f"with {args.webserver_workers} workers, concurrency {args.concurrency}\n"
    )
    header = ("Airflow", "run", "contender", "wall s", "changes", "Groups calls", "AF reads",
              "AF writes", "speed-up")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    seconds = {(r[0], r[1], r[2]): r[3] for r in rows}
    rows.sort(key=lambda r: (r[0], RUNS.index(r[2]), r[1] != "sequential"))
    for version, label, name, wall, changes, group_calls, reads, writes in rows:
        ratio = seconds[(version, "sequential", name)] / wall if label == "concurrent" else 1.0
        print(f"| {version} | {name} | {label} | {wall:.1f} | {changes} | {group_calls} | "
              f"{reads} | {writes} | {ratio:.1f}x |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
