"""The contract between code and Terraform: topics, subscriptions, entry points, training
jobs, Scheduler crons and the environment each deployable reads, all from ``platform.yaml``."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from local.infra_checks.common import (
    DEPLOY,
    INFRA,
    REPO,
    _differ,
    load_module,
)

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
    "RETAIL_DESK_DEV_SIGN_IN": "the desk's development sign-in: local stack only, by design",
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


def _entry_points_in(main: Path) -> set[str]:
    """Functions of functions/main.py wired as entry points (``@entry_point(...)``)."""
    tree = ast.parse(main.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(ast.unparse(d).startswith("entry_point(") for d in node.decorator_list)
    }


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
    ("google_project_iam_member", "build"): "the functions' build identity (build_account)",
    ("google_storage_bucket_iam_member", "build"): "the build reads the source (build_account)",
    ("google_cloud_run_v2_service_iam_member", "desk_iap"): "IAP's agent calls the desk",
    ("google_iap_web_cloud_run_service_iam_member", "desk"): "people IAP lets reach the desk",
}
DECLARATION_PATH = "${path.module}/../../../shared/platform.yaml"


def _fact_keys_in_python() -> set[str]:
    from shared.platform import environments, facts

    return set(facts(environments()[0], "p"))


def desk_problems(resources: dict, decl: dict, read: set[str]) -> list[str]:
    """The desk's service: IAP on, its image and identity the API's, its environment the
    API's plus every desk variable Settings reads (but the local development sign-in)."""
    out: list[str] = []
    desk = resources.get("google_cloud_run_v2_service", {}).get("desk")
    if desk is None:
        return ["google_cloud_run_v2_service.desk is not declared"]
    text = str(desk).replace("'", '"')
    if desk.get("iap_enabled") is not True:
        out.append("google_cloud_run_v2_service.desk must set iap_enabled = true")
    for needed in ("var.images.api", 'google_service_account.deployable["api"]', "local.desk_env"):
        if needed not in text:
            out.append(f"google_cloud_run_v2_service.desk does not use {needed}")
    declared = set(decl["desk"]["env"]) | set(decl["desk"]["secret_env"])
    wanted = {v for v in read if v.startswith("RETAIL_DESK_")} - {"RETAIL_DESK_DEV_SIGN_IN"}
    out += _differ("the desk's variables (Settings vs platform.yaml desk)", wanted, declared)
    missing = set(decl["desk"]["secret_env"].values()) - set(decl["secrets"])
    if missing:
        out.append(f"the desk reads undeclared secrets: {', '.join(sorted(missing))}")
    return out


def location_problems(infra: Path, resources: dict, decl: dict) -> list[str]:
    """One declared location for data and compute: every environment names its region,
    infra/deploy passes that region to the module, and every resource of the module is placed
    by it (datasets included): no literal location, no second variable."""
    out = [
        f"environment {name} declares no region"
        for name, env in decl["environments"].items()
        if not env.get("region")
    ]
    main = (infra / DEPLOY / "main.tf").read_text()
    if "local.platform.environments[var.environment].region" not in main:
        out.append("infra/deploy does not take the region from the declaration")
    if 'variable "region"' in (infra / DEPLOY / "variables.tf").read_text():
        out.append("infra/deploy takes a region variable beside the declared one")
    for kind, named in resources.items():
        for name, body in named.items():
            for key in ("location", "region"):
                if key in body and body[key] != "${var.region}":
                    out.append(
                        f"{kind}.{name}: {key} {body[key]!r} is not the declared region "
                        "(var.region, from shared/platform.yaml)"
                    )
    return out


_RELATIVE = re.compile(r'(?:file\("\$\{path\.module\}/|source\s*=\s*")(\.\./[^"]+)"')


def path_problems(infra: Path) -> list[str]:
    """Every ``file("${path.module}/../...")`` and module ``source = "../..."`` resolves: a
    root moved in the tree would read nothing (Terraform says so only when it runs)."""
    out = []
    for tf in sorted(infra.rglob("*.tf")):
        if ".terraform" in tf.parts:
            continue
        for target in _RELATIVE.findall(tf.read_text()):
            if not (tf.parent / target.removesuffix(")")).exists():
                out.append(f"{tf.relative_to(infra.parent)}: {target} does not exist")
    return out


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
    # One root for every environment; an environment is a variable file naming itself.
    root = infra / DEPLOY
    if "environment = var.environment" not in (root / "main.tf").read_text():
        out.append("infra/deploy does not pass environment = var.environment to the module")
    var_files = {p.stem: p for p in sorted((root / "env").glob("*.tfvars"))}
    for name, path in var_files.items():
        if f'environment = "{name}"' not in path.read_text():
            out.append(f"infra/deploy/env/{path.name} does not set environment = {name!r}")
    out += _differ(
        "environments (platform.yaml vs infra/deploy/env/*.tfvars)",
        set(decl["environments"]),
        set(var_files),
    )
    out += location_problems(infra, resources, decl)
    out += path_problems(infra)
    out += desk_problems(resources, decl, env_read(repo / "shared" / "settings.py"))

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
        if kind == "service":  # and the desk's, set on its own service (desk_problems)
            given |= set(decl["desk"]["env"]) | set(decl["desk"]["secret_env"])
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
