"""Every Terraform block and argument against the google provider's schema."""

from __future__ import annotations

import json
from pathlib import Path

from local.infra_checks.common import (
    DEPLOY,
    INFRA,
)

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
                        beta = "google-beta" in str(body.get("provider", ""))
                        spec = (schema["beta"] if beta else schema)[kind].get(typ)
                        if spec is None:
                            out.append(f"{where}: not a {kind} type of {schema['provider']}")
                            continue
                        counts["resources"] += 1
                        out += _check_body(where, body, spec, counts)
        for block in doc.get("terraform", []):
            for req in block.get("required_providers", []):
                for provider in ("google", "google-beta"):
                    found = req.get(provider, {})
                    version = found.get("version") if isinstance(found, dict) else None
                    if version is not None and version != schema["provider"].split()[-1]:
                        out.append(
                            f"{rel}: {provider} provider {version!r} is not the version whose "
                            f"schema is checked ({schema['provider']}); pin it exactly"
                        )
    lock = infra / DEPLOY / ".terraform.lock.hcl"
    text = lock.read_text() if lock.exists() else ""
    version = schema["provider"].split()[-1]
    for provider in ("google", "google-beta"):
        wanted = f'hashicorp/{provider}" {{\n  version     = "{version}"'
        if wanted not in text:
            out.append(f"{DEPLOY}: no .terraform.lock.hcl locking hashicorp/{provider} {version}")
    return out, counts
