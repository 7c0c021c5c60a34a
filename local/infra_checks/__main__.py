"""``python -m local.infra_checks``: every offline check, with a count of problems."""

from __future__ import annotations

import sys

from local.infra_checks.common import (
    REPO,
)
from local.infra_checks.contract import contract_problems
from local.infra_checks.schema import schema_problems
from local.infra_checks.tools import checkov, hadolint, terraform_fmt
from local.infra_checks.values import value_problems


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
