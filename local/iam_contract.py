"""The IAM contract: every Google API call a deployable really made, in a run on the local
stack, is allowed by what Terraform grants that deployable's service account.

    python -m local.iam_contract [TRACE_DIR]   # default: the newest recorded run under .local

Calls are recorded per process by ``local/calltrace.py``. Each is mapped to an API method and
the resource it acts on (a bucket, a dataset, a topic, a secret, a job, or the project), the
method to the permissions it needs with ``infra/gcp_iam.json`` (methods -> permissions and
roles -> permissions; its header names the source), and compared with the grants of
``shared/platform.yaml``, which Terraform applies as they are (``infra_checks`` holds the
Terraform side to that). A missing permission names the deployable, the method and the
permission; grants no recorded call needs are listed (least privilege), not failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from local.iam_calls import (
    OPTIONAL,
    REPO,
    Need,
    Report,
    load_calls,
    needs_of_call,
    reference,
)

# --------------------------------------------------------------------------- grants


def _keyed(names: Any, decl: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Concrete resource name -> the declaration's key, per scope."""
    return {
        "buckets": {names.bucket(k): k for k in decl["buckets"]},
        "datasets": {names.dataset(k): k for k in ("source", *decl["datasets"])},
        "topics": {names.topic(t): t for t in decl["topics"]},
        "secrets": {names.secret(k): k for k in decl["secrets"]},
        "jobs": {names.job(j): j for j, d in decl["deployables"].items() if d["kind"] == "job"},
    }


def identity(process: str, names: Any, decl: dict[str, Any]) -> str | None:
    """The deployable a recorded process was (functions by entry point, jobs and the API by
    their deployed names)."""
    for who, d in decl["deployables"].items():
        if process == who and d["kind"] == "function":
            return who
        if d["kind"] == "job" and process == names.job(who):
            return who
        if d["kind"] == "service" and process == names.service(who):
            return who
    return None


def grants_on(decl: dict[str, Any], who: str, scope: str, target: str) -> list[tuple[str, str]]:
    """``(where, role)`` of every grant ``who`` holds on ``target`` (project grants reach
    everything); ``where`` is ``scope/target`` as :func:`_all_grants` names it."""
    grants = decl["grants"].get(who, {})
    found = [("project/project", r) for r in grants.get("project", [])]
    if scope != "project":
        found += [(f"{scope}/{target}", r) for r in _as_list(grants.get(scope, {}).get(target))]
    return found


def _as_list(value: Any) -> list[str]:
    """A target's grant: one role or a list of roles."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def check(
    trace_dir: Path,
    environment: str,
    project: str,
    decl: dict[str, Any] | None = None,
    ref: dict[str, Any] | None = None,
) -> Report:
    """Recorded calls -> needed permissions -> granted, per deployable."""
    from shared.platform import Names, declaration

    decl = decl or declaration()
    ref = ref or reference()
    names = Names(environment, project)
    keyed = _keyed(names, decl)
    report = Report()
    used: set[tuple[str, str, str]] = set()  # (deployable, scope/target, role)
    for process, calls in load_calls(trace_dir).items():
        who = identity(process, names, decl)
        if who is None:
            report.unmapped.append(f"process {process!r} is no deployable of {environment}")
            continue
        report.deployables.add(who)
        for call in calls:
            needs = needs_of_call(who, call, ref, project)
            if isinstance(needs, str):
                report.unmapped.append(f"{who}: {needs}")
                continue
            for n in needs:
                target = n.target if n.scope == "project" else keyed[n.scope].get(n.target)
                if target is None:
                    report.missing.append(Need(who, n.method, n.permission, n.scope, n.target))
                    continue
                giving = [
                    (where, role)
                    for where, role in grants_on(decl, who, n.scope, target)
                    if n.permission in ref["roles"].get(role, [])
                ]
                report.checked.setdefault(who, []).append((n.method, n.permission, target))
                if not giving:
                    if n.method in OPTIONAL:
                        report.optional.add((who, n.method, n.permission))
                        continue
                    report.missing.append(Need(who, n.method, n.permission, n.scope, target))
                    continue
                used.update((who, where, role) for where, role in giving)
    for who in sorted(report.deployables):
        for scope, role_target in _all_grants(decl, who):
            target, role = role_target
            if (who, f"{scope}/{target}", role) not in used:
                report.unused.append((who, scope, target, role))
    return report


def _all_grants(decl: dict[str, Any], who: str) -> Iterable[tuple[str, tuple[str, str]]]:
    for scope, value in decl["grants"].get(who, {}).items():
        if scope == "project":
            for role in value:
                yield scope, ("project", role)
        else:
            for target, roles in value.items():
                for role in _as_list(roles):
                    yield scope, (target, role)


def newest_trace(root: Path = REPO / ".local") -> Path | None:
    """The most recently written call trace of any local stack under ``root``."""
    dirs = [p for p in root.rglob("calls") if p.is_dir() and any(p.glob("*.jsonl"))]
    return max(dirs, key=lambda p: max(f.stat().st_mtime for f in p.glob("*.jsonl")), default=None)


def print_report(report: Report, say: Any = print) -> int:
    """The per-deployable table and the findings; returns the number of problems."""
    say(f"  {'deployable':<18} {'calls->permissions checked':>28}  missing")
    for who in sorted(report.deployables):
        checked = report.checked.get(who, [])
        methods = len({m for m, _, _ in checked})
        missing = [n for n in report.missing if n.deployable == who]
        say(f"  {who:<18} {f'{methods} methods, {len(checked)} checks':>28}  {len(missing)}")
    for n in report.missing:
        say(f"  MISSING {n.deployable}: {n.method} needs {n.permission} on {n.scope} {n.target}")
    for line in report.unmapped:
        say(f"  UNMAPPED {line}")
    for method in sorted({m for _, m, _ in report.optional}):
        who = sorted({w for w, m, _ in report.optional if m == method})
        say(f"  optional, not granted: {method} by {', '.join(who)}: {OPTIONAL[method]}")
    if report.unused:
        say("  granted but needed by no recorded call (least privilege; not a failure):")
        say(f"    {'deployable':<18} {'on':<28} role")
        for who, scope, target, role in report.unused:
            say(f"    {who:<18} {f'{scope} {target}':<28} {role}")
    return len(report.missing) + len(report.unmapped)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    trace = Path(args[0]) if args else newest_trace()
    if trace is None:
        print("no recorded calls: run `make demo` (or the tests) first")
        return 1
    env_file = trace.parent / "environment"
    environment = env_file.read_text().strip() if env_file.exists() else "dev"
    report = check(trace, environment, "retail-local")
    print(f"IAM contract ({trace}, environment {environment}):")
    return 1 if print_report(report) else 0


if __name__ == "__main__":
    sys.exit(main())
