"""Recorded Google API calls -> the permissions they need, on which resource: each call is
mapped to an API method and the resource it acts on (a bucket, a dataset, a topic, a secret, a
job, or the project), the method to its permissions with ``infra/gcp_iam.json``."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "infra" / "gcp_iam.json"

# Where the reference's method -> permissions list is not what a call of ours needs, and why.
# (Its lists are the union over every form of a call.)
REFINEMENTS: dict[str, tuple[list[str], str]] = {
    "storage.objects.get": (["storage.objects.get"], "getIamPolicy only with projection=full"),
    "storage.objects.list": (["storage.objects.list"], "getIamPolicy only with projection=full"),
    "storage.buckets.get": (["storage.buckets.get"], "getIamPolicy only with projection=full"),
    "bigquery.tabledata.list": (["bigquery.tables.getData"], "reads rows; the map lists none"),
    "bigquery.jobs.get": (["bigquery.jobs.create"], "a job's creator reads its own jobs"),
    "bigquery.jobs.getQueryResults": (
        ["bigquery.jobs.create"],
        "results of the caller's own query job (tables it read are checked at insert)",
    ),
}


# Calls a client library makes on its own that tolerate a refusal, and why: recorded and shown,
# not required.
OPTIONAL: dict[str, str] = {
    "storage.buckets.get": "google-cloud-storage 3.x fetches bucket metadata in the background "
    "for telemetry and caches a fallback on 403 (_bucket_metadata_cache.py); no code of ours "
    "reads bucket metadata",
}


@dataclass(frozen=True)
class Need:
    """One permission a recorded call needs, on one resource."""

    deployable: str
    method: str
    permission: str
    scope: str  # project | buckets | datasets | topics | secrets | jobs
    target: str  # the declaration's key for the resource (or the concrete name if unknown)


@dataclass
class Report:
    checked: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    missing: list[Need] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    unused: list[tuple[str, str, str, str]] = field(default_factory=list)
    optional: set[tuple[str, str, str]] = field(default_factory=set)
    deployables: set[str] = field(default_factory=set)


def reference(path: Path = REFERENCE) -> dict[str, Any]:
    return json.loads(path.read_text())


def method_permissions(ref: dict[str, Any], method: str) -> list[str]:
    if method in REFINEMENTS:
        return REFINEMENTS[method][0]
    service = method.split(".")[0]
    found = ref["methods"].get(service, {}).get(method)
    if found is None:  # gRPC-only services are keyed by their API name in the reference
        found = next((m[method] for m in ref["methods"].values() if method in m), None)
    if found is None:
        raise KeyError(method)
    return list(found)


_TABLE_REF = re.compile(r"`([a-z0-9-]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_$]+)`")
_CREATES = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`([^`]+)`", re.I
)
_DROPS = re.compile(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?`([^`]+)`", re.I)
_WRITES = re.compile(r"\b(?:INSERT\s+INTO|DELETE\s+FROM|MERGE|UPDATE)\s+`([^`]+)`", re.I)


def _storage_method(verb: str, path: str) -> tuple[str, str] | None:
    m = re.match(r"^(?:/upload|/download)?/storage/v1/b(?:/([^/]+))?(?:/o(?:/(.+))?)?$", path)
    if not m:
        m2 = re.match(r"^/storage/v1/b/([^/]+)/o/(.+)/(rewriteTo|copyTo|compose)", path)
        if m2:
            return (
                f"storage.objects.{'compose' if m2.group(3) == 'compose' else 'rewrite'}",
                m2.group(1),
            )
        return None
    bucket, obj = m.group(1), m.group(2)
    objects = "/o" in path
    if bucket is None:
        return ("storage.buckets.insert" if verb == "POST" else "storage.buckets.list"), ""
    if not objects:
        verbs = {"GET": "get", "DELETE": "delete", "PATCH": "patch"}
        return f"storage.buckets.{verbs.get(verb, 'update')}", bucket
    if obj is None:
        return (
            "storage.objects.insert" if verb in ("POST", "PUT") else "storage.objects.list"
        ), bucket
    return {"GET": "storage.objects.get", "DELETE": "storage.objects.delete",
            "PATCH": "storage.objects.patch", "PUT": "storage.objects.insert",
            "POST": "storage.objects.insert"}[verb], bucket  # fmt: skip


def _dataset(full: str, project: str) -> str:
    parts = full.split(".")
    return parts[-2] if len(parts) >= 2 else ""


def needs_of_call(
    deployable: str, call: dict[str, Any], ref: dict[str, Any], project: str
) -> list[Need] | str:
    """The permissions one recorded call needs; a string says why it could not be mapped."""
    out: list[Need] = []

    def need(method: str, scope: str, target: str, only: list[str] | None = None) -> None:
        for permission in only if only is not None else method_permissions(ref, method):
            out.append(Need(deployable, method, permission, scope, target))

    if call.get("kind") == "grpc":
        method, resource = call["method"], call.get("resource") or ""
        if method.endswith("/Publish"):
            need("pubsub.projects.topics.publish", "topics", resource.rsplit("/", 1)[-1])
        elif method.startswith("/google.cloud.bigquery.storage.v1.BigQueryRead/"):
            rpc = method.rsplit("/", 1)[-1]
            full = f"google.cloud.bigquery.storage.v1.BigQueryRead.{rpc}"
            for permission in method_permissions(ref, full):
                if permission == "bigquery.tables.getData":  # on the table read
                    match = re.search(r"/datasets/([^/]+)/tables/", resource)
                    out.append(
                        Need(
                            deployable,
                            full,
                            permission,
                            "datasets",
                            match.group(1) if match else "",
                        )
                    )
                else:  # read sessions exist only at project level
                    out.append(Need(deployable, full, permission, "project", project))
        elif method == "/google.cloud.run.v2.Jobs/RunJob":
            # With per-execution overrides (our launches always pass the run's variables).
            need("run.projects.locations.jobs.run", "jobs", resource.rsplit("/", 1)[-1],
                 ["run.jobs.runWithOverrides"])  # fmt: skip
        elif method == "/google.cloud.run.v2.Executions/ListExecutions" or method.endswith(
            "Jobs/ListExecutions"
        ):
            need("run.projects.locations.jobs.executions.list", "jobs", resource.split("/")[-1])
        elif method == "/google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion":
            secret = resource.split("/secrets/")[-1].split("/")[0]
            need("secretmanager.projects.secrets.versions.access", "secrets", secret)
        else:
            return f"gRPC {method}"
        return out

    verb, path = call.get("verb", ""), call.get("path", "")
    if re.match(r"^/v1/groups", path):
        return []  # Cloud Identity: a Workspace admin role (Groups Reader), not project IAM
    if not re.match(r"^(/upload|/download)?/(storage|bigquery)/", path):
        return []  # not a Google API (the Airflow REST API, the prediction API)
    if "/storage/v1/" in path:
        found = _storage_method(verb, path)
        if found is None:
            return f"HTTP {verb} {path}"
        method, bucket = found
        need(method, "buckets", bucket)
        return out
    m = re.match(r"^/bigquery/v2/projects/([^/]+)/(.*)$", path)
    if not m:
        return f"HTTP {verb} {path}"
    rest = m.group(2)
    if rest == "jobs" and verb == "POST":
        need("bigquery.jobs.insert", "project", project, ["bigquery.jobs.create"])
        sql = call.get("sql", "")
        job = call.get("job")
        written = {_dataset(t, project) for t in _CREATES.findall(sql) + _WRITES.findall(sql)}
        if job == "load" and call.get("destination"):
            written.add(call["destination"].split(".")[-1])
        for ds in written:
            need("bigquery.jobs.insert", "datasets", ds,
                 ["bigquery.tables.create", "bigquery.tables.updateData"])  # fmt: skip
        for ds in {_dataset(t, project) for t in _DROPS.findall(sql)}:
            need("bigquery.jobs.insert", "datasets", ds, ["bigquery.tables.delete"])
        targets = {f"{a}.{b}.{c}" for a, b, c in _TABLE_REF.findall(sql)}
        targets -= set(_CREATES.findall(sql)) | set(_DROPS.findall(sql))
        for ds in {t.split(".")[1] for t in targets} - written:
            need("bigquery.jobs.insert", "datasets", ds, ["bigquery.tables.getData"])
        if job == "extract":
            need("bigquery.jobs.insert", "datasets", "", ["bigquery.tables.export"])
        return out
    if rest == "queries" and verb == "POST":
        return needs_of_call(deployable, {**call, "path": path[:-len("queries")] + "jobs",
                                          "job": "query"}, ref, project)  # fmt: skip
    routes = [
        (r"^jobs/[^/]+$", "GET", "bigquery.jobs.get", "project"),
        (r"^jobs/[^/]+/cancel$", "POST", "bigquery.jobs.cancel", "project"),
        (r"^queries/[^/]+$", "GET", "bigquery.jobs.getQueryResults", "project"),
        (r"^datasets/([^/]+)$", "GET", "bigquery.datasets.get", "datasets"),
        (r"^datasets$", "POST", "bigquery.datasets.insert", "project"),
        (r"^datasets/([^/]+)/tables$", "GET", "bigquery.tables.list", "datasets"),
        (r"^datasets/([^/]+)/tables$", "POST", "bigquery.tables.insert", "datasets"),
        (r"^datasets/([^/]+)/tables/[^/]+$", "GET", "bigquery.tables.get", "datasets"),
        (r"^datasets/([^/]+)/tables/[^/]+$", "DELETE", "bigquery.tables.delete", "datasets"),
        (r"^datasets/([^/]+)/tables/[^/]+$", "PATCH", "bigquery.tables.patch", "datasets"),
        (r"^datasets/([^/]+)/tables/[^/]+$", "PUT", "bigquery.tables.update", "datasets"),
        (r"^datasets/([^/]+)/tables/[^/]+/data$", "GET", "bigquery.tabledata.list", "datasets"),
        (
            r"^datasets/([^/]+)/tables/[^/]+/insertAll$",
            "POST",
            "bigquery.tabledata.insertAll",
            "datasets",
        ),
    ]
    for pattern, want_verb, method, scope in routes:
        hit = re.match(pattern, rest)
        if hit and verb == want_verb:
            need(method, scope, hit.group(1) if scope == "datasets" else project)
            return out
    return f"HTTP {verb} {path}"


def load_calls(trace_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Recorded calls by deployable (the process's identity variable)."""
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(trace_dir.glob("*.jsonl")):
        who = path.name.rsplit("-", 1)[0]
        for line in path.read_text().splitlines():
            if line.strip():
                calls[who].append(json.loads(line))
    return calls
