"""The deployment declared once (``shared/platform.yaml``): names, topology, each deployable's
environment and grants, per environment.

Terraform reads the same file (``yamldecode``) and computes the same facts; the local stack
builds the same names and environments from here, so a run on the emulators uses exactly the
topic, bucket and dataset names, and the variables, of the environment it stands for.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.errors import PlatformError

DECLARATION = Path(__file__).with_name("platform.yaml")


class DeclarationError(PlatformError, ValueError):
    """The declaration or an environment name is not usable; the message names it."""


@functools.cache
def declaration() -> dict[str, Any]:
    """The parsed ``platform.yaml`` (cached; never mutate it)."""
    with DECLARATION.open() as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        raise DeclarationError(f"{DECLARATION} does not hold a mapping")
    return doc


def environments() -> list[str]:
    return sorted(declaration()["environments"])


def environment(name: str) -> dict[str, Any]:
    """The settings of one environment (``dev``, ``prod``)."""
    envs = declaration()["environments"]
    if name not in envs:
        raise DeclarationError(f"unknown environment {name!r}; one of {', '.join(sorted(envs))}")
    return envs[name]


@dataclass(frozen=True)
class Names:
    """Every resource name of one environment in one project."""

    environment: str
    project: str
    # Another declaration than shared/platform.yaml (the offline checks read drifted copies).
    decl: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def _decl(self) -> dict[str, Any]:
        return self.decl if self.decl is not None else declaration()

    @property
    def _env(self) -> dict[str, Any]:
        envs = self._decl["environments"]
        if self.environment not in envs:
            raise DeclarationError(f"unknown environment {self.environment!r}")
        return envs[self.environment]

    @property
    def prefix(self) -> str:
        return str(self._env["prefix"])

    def topic(self, base: str) -> str:
        if base not in self._decl["topics"]:
            raise DeclarationError(f"unknown topic {base!r}")
        return f"{self.prefix}{base}"

    def subscription(self, base: str) -> str:
        known = {*self._decl["subscriptions"], self._decl["dead_letter"]["subscription"]}
        if base not in known:
            raise DeclarationError(f"unknown subscription {base!r}")
        return f"{self.prefix}{base}"

    def bucket(self, key: str) -> str:
        return f"{self.project}-{self.prefix}{self._decl['buckets'][key]}"

    def dataset(self, key: str) -> str:
        if key == "source":
            return str(self._env["source_dataset"])
        return f"{self.prefix.replace('-', '_')}{self._decl['datasets'][key]}"

    def secret(self, key: str) -> str:
        return f"{self.prefix}{self._decl['secrets'][key]}"

    def job(self, base: str) -> str:
        """Cloud Run job name of a training job."""
        return f"{self.prefix}{base}"

    def function(self, entry_point: str) -> str:
        return f"{self.prefix}{entry_point.replace('_', '-')}"

    def service(self, base: str = "api") -> str:
        return f"{self.prefix}{base}"

    def scheduler_job(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def account_id(self, deployable: str) -> str:
        """Service account id of a deployable (6-30 characters, checked offline)."""
        if deployable == "push_invoker":
            return f"{self.prefix}{self._decl['push_invoker_account']}"
        if deployable == "build":
            return f"{self.prefix}{self._decl['build_account']['account']}"
        return f"{self.prefix}{self._decl['deployables'][deployable]['account']}"

    def account_email(self, deployable: str) -> str:
        return f"{self.account_id(deployable)}@{self.project}.iam.gserviceaccount.com"


def deployables(kind: str | None = None) -> list[str]:
    """Deployable names (function entry points, training jobs, ``api``), optionally of a kind."""
    found = declaration()["deployables"]
    return [name for name, d in found.items() if kind is None or d["kind"] == kind]


def function_shape(entry_point: str, env_name: str) -> tuple[int, int]:
    """(max instances, requests per instance) of a function in an environment; Terraform's
    ``service_config`` resolves the same two values."""
    declared = declaration()["deployables"][entry_point]
    limits = environment(env_name)["fetch_limits"]
    instances = declared["max_instances"]
    concurrency = declared.get("concurrency", 1)
    if instances == "fetch_instances":
        instances = limits["max_instances"]
    if concurrency == "fetch_concurrency":
        concurrency = limits["concurrency"]
    return int(instances), int(concurrency)


def fetch_root(data_bucket: str) -> str:
    """Where fetches write by default: below the data bucket's ``fetch/`` prefix (not beside
    the models and the training intermediates)."""
    return f"gs://{data_bucket}/fetch/"


def facts(env_name: str, project: str, rbac_config_uri: str = "") -> dict[str, str]:
    """The values a deployable's variables name; Terraform's ``local.facts`` computes the same."""
    env = environment(env_name)
    names = Names(env_name, project)
    source = f"{project}.{names.dataset('source')}"
    limits = env["fetch_limits"]
    return {
        "project": project,
        "environment": env_name,
        "region": str(env["region"]),
        "prefix": names.prefix,
        # Datasets live in the region the code runs in (one declared location).
        "bigquery_location": str(env["region"]),
        "data_bucket": names.bucket("data"),
        "artifacts": f"gs://{names.bucket('artifacts')}",
        "fetch_tmp_dataset": names.dataset("fetch_tmp"),
        "results_dataset": names.dataset("results"),
        "max_streams": str(limits["max_streams"]),
        "time_budget_s": str(limits["time_budget_s"]),
        "part_max_rows": str(env["part_max_rows"]),
        "part_target_mb": str(env["part_target_mb"]),
        "claim_lease_s": str(env["claim_lease_s"]),
        "iam_propagation_s": str(declaration()["iam_propagation_s"]),
        "fetch_destinations": fetch_root(names.bucket("data")),
        "model_poll_s": str(env["model_poll_s"]),
        "promotions_table": f"{source}.promotions",
        "products_table": f"{source}.products",
        "stores_table": f"{source}.stores",
        "artifact_keys_secret": f"projects/{project}/secrets/{names.secret('artifact_keys')}",
        "rbac_config_uri": rbac_config_uri,
    }


def deployable_env(
    deployable: str,
    env_name: str,
    project: str,
    rbac_config_uri: str = "",
) -> dict[str, str]:
    """The environment Terraform gives ``deployable`` in ``env_name`` (secrets left out)."""
    decl = declaration()
    kind = decl["deployables"][deployable]["kind"]
    values = facts(env_name, project, rbac_config_uri)
    wanted: Mapping[str, str] = {
        **decl["env"][kind],
        **decl["env"]["extra"].get(deployable, {}),
    }
    return {var: values[fact] for var, fact in wanted.items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.platform check-prefix ENV PREFIX [REGION]``: Cloud Build's ``_PREFIX``
    and ``_REGION`` are the environment's declared prefix and region (the registry and source
    bucket it pushes to depend on them)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] != "check-prefix":
        print("usage: python -m shared.platform check-prefix ENV PREFIX [REGION]", file=sys.stderr)
        return 2
    try:
        env = environment(args[1])
    except DeclarationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    given = {"_PREFIX": args[2], **({"_REGION": args[3]} if len(args) == 4 else {})}
    declared = {"_PREFIX": str(env["prefix"]), "_REGION": str(env["region"])}
    for name, value in given.items():
        if value != declared[name]:
            print(
                f"error: {name}={value!r} but shared/platform.yaml declares "
                f"{declared[name]!r} for {args[1]}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
