"""Values of each environment against the limits the provider and the APIs enforce."""

from __future__ import annotations

import re
from pathlib import Path

from local.infra_checks.common import (
    REPO,
)

# --------------------------------------------------------------------------- values

# The rules the provider and the APIs apply to the values we pass, per environment; each names
# where it comes from. Project ids are at most 30 characters: names are checked at that length.
NAME_RULES: dict[str, tuple[str, str]] = {
    "service account id": (r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$", "IAM: 6-30 chars"),
    "topic": (r"^(?!goog)[a-zA-Z][-._~%+a-zA-Z0-9]{2,254}$", "Pub/Sub resource names"),
    "subscription": (r"^(?!goog)[a-zA-Z][-._~%+a-zA-Z0-9]{2,254}$", "Pub/Sub resource names"),
    "bucket": (r"^(?!goog)[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$", "Cloud Storage: 3-63 chars"),
    "dataset": (r"^[0-9A-Za-z_]{1,1024}$", "BigQuery dataset ids"),
    "function": (r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$", "Cloud Functions 2nd gen names"),
    "Cloud Run job": (r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$", "Cloud Run job names, 63 chars"),
    "Cloud Run service": (r"^[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?$", "Cloud Run service names, 49"),
    "secret": (r"^[a-zA-Z0-9_-]{1,255}$", "Secret Manager secret ids"),
    "repository": (r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$", "Artifact Registry repository ids"),
    "Scheduler job": (r"^[a-zA-Z0-9_-]{1,500}$", "Cloud Scheduler job ids"),
    "label key": (r"^[a-z][a-z0-9_-]{0,62}$", "resource labels"),
    "label value": (r"^[a-z0-9_-]{0,63}$", "resource labels"),
}
_CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [{}, {}, {}, {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])},
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}]  # fmt: skip
_MEMORY = re.compile(r"^(\d+)(Mi|Gi)$")
# Cloud Run: the most memory each CPU count may have.
_RUN_MEMORY_PER_CPU = {"1": 4, "2": 8, "4": 16, "6": 24, "8": 32}


def cron_problem(cron: str) -> str | None:
    """Why ``cron`` is not a valid 5-field unix-cron (as Cloud Scheduler reads it), or None."""
    fields = cron.split()
    if len(fields) != 5:
        return f"{cron!r} does not have 5 fields"
    for field, (lo, hi), names in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return f"{cron!r}: bad step in {part!r}"
            if base == "*":
                continue
            for bound in base.split("-", 1):
                value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if value is None or not lo <= value <= hi:
                    return f"{cron!r}: {bound!r} is outside {lo}-{hi}"
    return None


def _seconds(text: str) -> int | None:
    match = re.fullmatch(r"(\d+)s", str(text))
    return int(match.group(1)) if match else None


def value_problems(repo: Path = REPO) -> tuple[list[str], dict]:
    """Names, durations, enums, shapes and schedules of every environment against the rules
    the provider and the APIs apply. Returns (problems, counts of values checked)."""
    import zoneinfo

    import yaml

    from shared.platform import Names

    decl = yaml.safe_load((repo / "shared" / "platform.yaml").read_text())
    out: list[str] = []
    checked = {"values": 0}
    # Environments may share a project: none may name a resource another one creates.
    owners: dict[str, str] = {}
    for env_name in decl["environments"]:
        names = Names(env_name, "p", decl)
        for dataset in ("source", *decl["datasets"]):
            created = f"dataset {names.dataset(dataset)}"
            if created in owners:
                out.append(f"{env_name} and {owners[created]} both create {created}")
            owners[created] = env_name

    def rule(kind: str, value: str, env: str) -> None:
        checked["values"] += 1
        pattern, source = NAME_RULES[kind]
        if not re.fullmatch(pattern, value):
            out.append(f"{env}: {kind} {value!r} breaks the rule {pattern} ({source})")

    def within(what: str, value: object, lo: int, hi: int, env: str = "all") -> None:
        checked["values"] += 1
        if not isinstance(value, int) or not lo <= value <= hi:
            out.append(f"{env}: {what} = {value!r} must be an integer in {lo}..{hi}")

    policy = decl["subscription_policy"]
    within("max_delivery_attempts", policy["max_delivery_attempts"], 5, 100)
    within("minimum backoff (s)", policy["min_backoff_s"], 0, 600)
    within("maximum backoff (s)", policy["max_backoff_s"], policy["min_backoff_s"], 600)
    for what, text in (("subscription retention", policy["retention"]),
                       ("dead-letter retention", decl["dead_letter"]["retention"])):  # fmt: skip
        within(what + " (s)", _seconds(text), 600, 604800)
    for name, sub in decl["subscriptions"].items():
        within(f"subscription {name} ack deadline (s)", sub["ack_deadline_s"], 10, 600)
    for name, sched in decl["schedules"].items():
        checked["values"] += 1
        problem = cron_problem(sched["cron"])
        if problem:
            out.append(f"Scheduler job {name}: {problem}")

    project = "p" * 30  # the longest project id
    for env_name, env in decl["environments"].items():
        names = Names(env_name, project, decl)
        for who in decl["deployables"]:
            rule("service account id", names.account_id(who), env_name)
        rule("service account id", names.account_id("push_invoker"), env_name)
        rule("service account id", names.account_id("build"), env_name)
        for topic in decl["topics"]:
            rule("topic", names.topic(topic), env_name)
        for sub in [*decl["subscriptions"], decl["dead_letter"]["subscription"]]:
            rule("subscription", names.subscription(sub), env_name)
        for key in decl["buckets"]:
            rule("bucket", names.bucket(key), env_name)
        for key in ("source", *decl["datasets"]):
            rule("dataset", names.dataset(key), env_name)
        for key in decl["secrets"]:
            rule("secret", names.secret(key), env_name)
        rule("repository", f"{names.prefix}{decl['registry']}", env_name)
        rule("Cloud Run service", names.service("api"), env_name)
        for who, d in decl["deployables"].items():
            if d["kind"] == "function":
                rule("function", names.function(who), env_name)
                memory = str(d["memory"])
                checked["values"] += 1
                if not re.fullmatch(r"\d+(Mi|Gi|M|G)", memory):
                    out.append(f"{env_name}: function {who} memory {memory!r} is not like 512Mi")
            elif d["kind"] == "job":
                rule("Cloud Run job", names.job(who), env_name)
        for name in decl["schedules"]:
            rule("Scheduler job", names.scheduler_job(name), env_name)
        for key, value in (("env", env_name), ("app", "retail-platform")):
            rule("label key", key, env_name)
            rule("label value", value, env_name)
        checked["values"] += 1
        try:
            zoneinfo.ZoneInfo(env["schedule_time_zone"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            out.append(f"{env_name}: schedule_time_zone {env['schedule_time_zone']!r} is not a "
                       f"time zone of the IANA database")  # fmt: skip
        limits = env["fetch_limits"]
        within("fetch max_streams", limits["max_streams"], 1, 1000, env_name)
        within("fetch max_instances", limits["max_instances"], 1, 1000, env_name)
        within("fetch concurrency", limits["concurrency"], 1, 1000, env_name)
        # The widest run fits in the fetch functions' capacity: no stream waits on a 429.
        capacity = limits["max_instances"] * limits["concurrency"]
        if limits["max_streams"] > capacity:
            out.append(
                f"{env_name}: fetch max_streams {limits['max_streams']} is more than the fetch "
                f"functions serve at once (max_instances x concurrency = {capacity})"
            )
        # The function stops at 540 s; a worker must hand on before, inside the ack deadline.
        fetch_ack = decl["subscriptions"]["fetch-chunk"]["ack_deadline_s"]
        within("fetch time_budget_s", limits["time_budget_s"], 1, min(539, fetch_ack - 1), env_name)
        for job, shape in env["training"].items():
            within(f"job {job} task_count", shape["task_count"], 1, 10000, env_name)
            within(f"job {job} parallelism", shape["parallelism"], 1, shape["task_count"], env_name)
            within(f"job {job} max_retries", shape["max_retries"], 0, 10, env_name)
            within(f"job {job} timeout_s", shape["timeout_s"], 1, 604800, env_name)
            checked["values"] += 1
            cpu, memory = str(shape["cpu"]), _MEMORY.fullmatch(str(shape["memory"]))
            if cpu not in _RUN_MEMORY_PER_CPU or memory is None:
                out.append(
                    f"{env_name}: job {job} cpu {cpu!r} / memory {shape['memory']!r} "
                    f"are not Cloud Run values (cpu 1,2,4,6,8; memory like 4Gi)"
                )
            else:
                gib = int(memory.group(1)) / (1024 if memory.group(2) == "Mi" else 1)
                if gib > _RUN_MEMORY_PER_CPU[cpu]:
                    out.append(f"{env_name}: job {job} memory {shape['memory']} needs more than "
                               f"{cpu} CPU (at most {_RUN_MEMORY_PER_CPU[cpu]}Gi)")  # fmt: skip
        within("api min_instances", env["api"]["min_instances"], 0, 1000, env_name)
        within("api max_instances", env["api"]["max_instances"],
               max(1, env["api"]["min_instances"]), 1000, env_name)  # fmt: skip
    return out, checked
