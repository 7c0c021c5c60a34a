"""A local Cloud Identity Groups API: the REST paths and JSON the real one speaks, for the
parts the reconciler uses (``groups:lookup``, ``groups/{id}/memberships`` with paging).

    python -m local.cloud_identity --port 8095 --seed groups.yaml

Seed (YAML): ``groups: {team@example.com: [alice@example.com, sub-team@example.com, ...]}``;
a member that is itself a key of ``groups`` is a nested GROUP, an address ending in
``gserviceaccount.com`` a SERVICE_ACCOUNT, anything else a USER. Test hooks (not in the real
API): ``PUT /_admin/groups`` replaces the memberships, ``POST /_admin/faults``
``{"group": "<email or *>", "mode": "500" | "429" | "timeout", "count": n, "page": k}`` makes
the next n reads of that group fail (with ``page``, only the k-th page of its memberships,
0-based, so a read can fail half-way through a large group), ``GET /_admin/calls`` counts
requests.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import threading
import time
from pathlib import Path

import yaml
from flask import Flask, jsonify, request

PAGE_MAX = 200


def _group_id(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:20]


def _error(code: int, status: str, message: str):
    return jsonify({"error": {"code": code, "message": message, "status": status}}), code


def create_app(groups: dict[str, list[str]] | None = None) -> Flask:
    """The app, holding its state in memory (one process, guarded by a lock)."""
    app = Flask(__name__)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    lock = threading.Lock()
    state: dict = {"groups": {}, "faults": [], "calls": 0}

    def load(new: dict[str, list[str]]) -> None:
        normal = {g.lower(): [m.lower() for m in members or []] for g, members in new.items()}
        state["groups"] = normal
        state["by_id"] = {_group_id(g): g for g in normal}

    load(groups or {})

    def fault_for(group: str, page: int | None = None):
        for fault in state["faults"]:
            if fault["count"] > 0 and fault["group"] in ("*", group):
                if fault["page"] is not None and fault["page"] != page:
                    continue
                fault["count"] -= 1
                return fault["mode"]
        return None

    def fail(mode: str, group: str):
        if mode == "timeout":
            time.sleep(30)
        if mode == "429":
            return _error(429, "RESOURCE_EXHAUSTED", f"quota exceeded reading {group}")
        return _error(500, "INTERNAL", f"injected failure reading {group}")

    @app.get("/v1/groups:lookup")
    def lookup():
        with lock:
            state["calls"] += 1
            email = (request.args.get("groupKey.id") or "").lower()
            if email not in state["groups"]:
                return _error(404, "NOT_FOUND", f"group {email!r} not found")
            mode = fault_for(email)
        if mode:
            return fail(mode, email)
        return jsonify({"name": f"groups/{_group_id(email)}"})

    @app.get("/v1/groups/<gid>/memberships")
    def memberships(gid: str):
        with lock:
            state["calls"] += 1
            email = state["by_id"].get(gid)
            if email is None:
                return _error(404, "NOT_FOUND", f"groups/{gid} not found")
            size = min(int(request.args.get("pageSize") or 50), PAGE_MAX)
            start = int(request.args.get("pageToken") or 0)
            mode = fault_for(email, start // max(size, 1))
            members = list(state["groups"][email])
            known = set(state["groups"])
        if mode:
            return fail(mode, email)
        page = members[start : start + size]
        body: dict = {
            "memberships": [
                {
                    "name": f"groups/{gid}/memberships/{_group_id(m)}",
                    "preferredMemberKey": {"id": m},
                    "roles": [{"name": "MEMBER"}],
                    "type": "GROUP"
                    if m in known
                    else "SERVICE_ACCOUNT"
                    if m.endswith("gserviceaccount.com")
                    else "USER",
                }
                for m in page
            ]
        }
        if start + size < len(members):
            body["nextPageToken"] = str(start + size)
        return jsonify(body)

    @app.put("/_admin/groups")
    def replace_groups():
        with lock:
            load((request.get_json(force=True) or {}).get("groups", {}))
        return jsonify({"groups": len(state["groups"])})

    @app.post("/_admin/faults")
    def add_fault():
        fault = request.get_json(force=True)
        with lock:
            state["faults"].append(
                {
                    "group": fault.get("group", "*").lower(),
                    "mode": str(fault.get("mode", "500")),
                    "count": int(fault.get("count", 1)),
                    "page": None if fault.get("page") is None else int(fault["page"]),
                }
            )
        return jsonify(fault)

    @app.delete("/_admin/faults")
    def clear_faults():
        with lock:
            state["faults"] = []
        return jsonify({})

    @app.get("/_admin/calls")
    def calls():
        return jsonify({"calls": state["calls"]})

    @app.get("/healthz")
    def health():
        return "ok"

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--seed", type=Path)
    args = parser.parse_args(argv)
    seed = yaml.safe_load(args.seed.read_text()) if args.seed else {}
    app = create_app((seed or {}).get("groups", {}))
    from werkzeug.serving import make_server

    make_server(args.host, args.port, app, threaded=True).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
