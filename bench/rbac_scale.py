"""RBAC at scale: 50 projects x 2,000 users against a real Airflow, with API calls counted.

    .venv/bin/python -m bench.rbac_scale [--version 2.10.5] [--projects 50] [--users 2000]

Generates the groups (each user in one or two project groups, a few admins, nested groups)
on a local Cloud Identity server and 2 DAGs per project in a fresh Airflow home, then runs:
the first sync (creates roles and users), a second with no change (must write nothing), and
one after 1% of the memberships changed. Prints wall time, Groups API calls and Airflow
reads/writes of each.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", default="2.10.5")
    parser.add_argument("--port", type=int, default=18380)
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args(argv)

    from werkzeug.serving import make_server

    from local.airflow import down, up
    from local.cloud_identity import create_app
    from shared.clients import cloud_identity_service
    from shared.rbac.airflow import AirflowClient
    from shared.rbac.config import parse_config
    from shared.rbac.groups import GroupsReader
    from shared.rbac.sync import sync
    from shared.settings import Settings

    rng = random.Random(7)
    projects = [f"p{i:02d}" for i in range(args.projects)]
    users = [f"user{i:05d}@corp.example" for i in range(args.users)]
    groups: dict[str, list[str]] = {f"{p}@corp.example": [] for p in projects}
    for user in users:
        for p in rng.sample(projects, rng.choice([1, 1, 2])):
            groups[f"{p}@corp.example"].append(user)
    for p in projects[:10]:  # a nested "leads" group in ten projects
        leads = f"{p}-leads@corp.example"
        groups[leads] = groups[f"{p}@corp.example"][:3]
        groups[f"{p}@corp.example"].append(leads)
    groups["admins@corp.example"] = users[:5]
    dags = {f"{p}_{k}": [p] for p in projects for k in ("daily", "weekly")}

    server = make_server("127.0.0.1", 0, create_app(groups), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    identity = Settings(
        project="rbac-scale", cloud_identity_emulator_host=f"http://127.0.0.1:{server.server_port}"
    )
    home = Path(tempfile.mkdtemp(prefix="rbac-scale-"))
    print(f"starting Airflow {args.version} with {len(dags)} DAGs ...", flush=True)
    af = up(args.version, args.port, home, dags=dags)
    os.environ["AIRFLOW_SCALE_PW"] = af.admin_password
    config = parse_config(
        {
            "airflow": {
                "url": af.url,
                "auth": {"type": "basic", "username": "admin", "password_env": "AIRFLOW_SCALE_PW"},
            },
            "admin_groups": ["admins@corp.example"],
            "projects": {
                p: {
                    "role": f"project-{p}",
                    "groups": [f"{p}@corp.example"],
                    "dags": {"prefixes": [f"{p}_"]},
                }
                for p in projects
            },
            "allow_list": ["admin@example.com"],
            "max_revocations": 100,
        }
    )
    header = ("run", "wall s", "changes", "groups calls", "af reads", "af writes")
    print(f"{header[0]:<28}" + "".join(f"{h:>12}" for h in header[1:]))

    def run(label: str) -> None:
        client = AirflowClient(af.url, username="admin", password=af.admin_password)
        t0 = time.perf_counter()
        result = sync(config, groups=GroupsReader(cloud_identity_service(identity)), airflow=client)
        print(
            f"{label:<28}{time.perf_counter() - t0:>12.1f}{len(result.changes):>12}"
            f"{result.group_calls:>12}{result.airflow_reads:>12}{result.airflow_writes:>12}",
            flush=True,
        )

    try:
        run("first sync")
        run("second sync, no change")
        moved = {g: list(m) for g, m in groups.items()}
        for user in rng.sample(users[5:], args.users // 100):
            for members in moved.values():
                if user in members:
                    members.remove(user)
            moved[f"{rng.choice(projects)}@corp.example"].append(user)
        import requests

        requests.put(
            f"http://127.0.0.1:{server.server_port}/_admin/groups",
            json={"groups": moved},
            timeout=10,
        )
        run("after 1% of members moved")
    finally:
        down(af)
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
