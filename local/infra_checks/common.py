"""Paths and helpers every infrastructure check shares."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MODULE = Path("modules") / "platform"
DEPLOY = Path("deploy")  # the one root; env/<name>.tfvars per environment
TOOLS = REPO / ".local" / "tools"
CHECKOV = "checkov>=3.2,<4"


class InfraCheckError(RuntimeError):
    """A checker could not run (not a finding: the reason it did not look)."""


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
