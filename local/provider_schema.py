"""The Terraform google provider's schema, offline, for the resources ``infra/`` uses.

    python -m local.provider_schema    # refresh infra/provider-schema.json (needs npm once)

The npm package ``@cdktf/provider-google`` (PACKAGE) is generated from the provider's own schema
(hashicorp/google PROVIDER): every resource argument is a property whose documentation links
to the registry with the HCL name (``.../resources/storage_bucket#name``), nested blocks are
structs, optional arguments are marked, and enumerated values are listed ("Possible values").
This extracts, for each resource and data source type ``infra/`` declares, its arguments
(required or not, enum values) and blocks (recursively, single or list), into a small JSON file
committed beside the Terraform, so the checks in ``local.infra_checks`` need nothing online.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "@cdktf/provider-google@16.12.1"
# Resources declared with ``provider = google-beta`` (a preview argument, e.g. Cloud Run's
# iap_enabled) are read from the beta provider's package of the same version.
BETA_PACKAGE = "@cdktf/provider-google-beta@16.12.1"
PROVIDER = "6.50.0"
OUTPUT = REPO / "infra" / "provider-schema.json"
CACHE = REPO / ".local" / "tools" / "cdktf"

_LINK = re.compile(r"registry\.terraform\.io/providers/hashicorp/google(?:-beta)?/([\d.]+)/docs/"
                   r"(resources|data-sources)/([a-z0-9_]+)#([a-z0-9_]+)")  # fmt: skip
_POSSIBLE = re.compile(r"Possible values: \[([^\]]*)\]")


_BLOCK = re.compile(r'^(resource|data)\s+"([a-z0-9_]+)"\s+"[^"]+"\s*\{(.*?)^\}', re.M | re.S)


def used_types(infra: Path = REPO / "infra", beta: bool = False) -> dict[str, set[str]]:
    """``{"resource": {...}, "data": {...}}``: the types the Terraform declares with the
    google provider (``beta``: with ``provider = google-beta``)."""
    found: dict[str, set[str]] = {"resource": set(), "data": set()}
    for path in infra.rglob("*.tf"):
        for kind, name, body in _BLOCK.findall(path.read_text()):
            on_beta = re.search(r"^\s*provider\s*=\s*google-beta\s*$", body, re.M) is not None
            if on_beta == beta:
                found[kind].add(name)
    return found


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _struct(types: dict[str, Any], fqn: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Arguments and blocks of one struct (a resource's Config or a nested block)."""
    attributes: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        docs = prop.get("docs", {})
        text = f"{docs.get('summary', '')} {docs.get('remarks', '')}"
        link = _LINK.search(text)
        name = link.group(4) if link else _snake(prop["name"])
        typ = prop["type"]
        nested = typ.get("fqn")
        many = False
        coll = typ.get("collection")
        if coll and coll.get("kind") == "array":
            element = coll["elementtype"]
            if "union" in element:  # IResolvable | Struct[]
                element = next((t for t in element["union"]["types"] if "fqn" in t), element)
            nested = element.get("fqn")
            many = True
        if "union" in typ:
            for option in typ["union"]["types"]:
                inner = option.get("collection", {}).get("elementtype", {})
                if "fqn" in inner and types.get(inner["fqn"], {}).get("datatype"):
                    nested, many = inner["fqn"], True
        if nested and types.get(nested, {}).get("datatype") and nested not in seen:
            blocks[name] = {
                "required": not prop.get("optional", False),
                "list": many,
                **_struct(types, nested, (*seen, nested)),
            }
            continue
        entry: dict[str, Any] = {"required": not prop.get("optional", False)}
        possible = _POSSIBLE.search(docs.get("summary", "") + " " + docs.get("remarks", ""))
        if possible:
            values = possible.group(1).split(",")
            entry["enum"] = [v.strip().strip('"') for v in values if v.strip()]
        attributes[name] = entry
    return {"attributes": attributes, "blocks": blocks}


def extract(jsii: dict[str, Any], wanted: dict[str, set[str]]) -> dict[str, Any]:
    """The trimmed schema of the wanted resource and data source types."""
    types = jsii["types"]
    # Each resource (data source) class takes its Config struct; its initializer's docs link
    # to the registry page named after the type.
    configs: dict[tuple[str, str], str] = {}
    page = re.compile(r"hashicorp/google(?:-beta)?/[\d.]+/docs/(resources|data-sources)/"
                      r"(?:google_)?([a-z0-9_]+)[ }]")  # fmt: skip
    for typ in types.values():
        if typ.get("base") not in ("cdktf.TerraformResource", "cdktf.TerraformDataSource"):
            continue
        init = typ.get("initializer", {})
        found = page.search(init.get("docs", {}).get("summary", ""))
        config = next((p["type"].get("fqn") for p in init.get("parameters", [])
                       if p["name"] == "config"), None)  # fmt: skip
        if found and config:
            kind = "resource" if found.group(1) == "resources" else "data"
            configs[(kind, f"google_{found.group(2)}")] = config
    out: dict[str, Any] = {"resource": {}, "data": {}}
    for kind, names in wanted.items():
        for name in sorted(names):
            fqn = configs.get((kind, name))
            if fqn is None:
                out[kind][name] = None  # not a type of this provider version
                continue
            out[kind][name] = _struct(types, fqn)
    return out


def _jsii_from_npm(package: str = PACKAGE) -> dict[str, Any]:
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = package.rsplit("@", 1)[0].removeprefix("@").replace("/", "-")
    tarballs = sorted(CACHE.glob(f"{stem}-[0-9]*.tgz"))
    if not tarballs:
        subprocess.run(["npm", "pack", package, "--silent"], cwd=CACHE, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        tarballs = sorted(CACHE.glob(f"{stem}-[0-9]*.tgz"))
    with tarfile.open(tarballs[-1]) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None
        return json.load(member)


def main() -> int:
    schema = extract(_jsii_from_npm(), used_types())
    beta = extract(_jsii_from_npm(BETA_PACKAGE), used_types(beta=True))
    doc = {
        "source": f"npm {PACKAGE} and {BETA_PACKAGE} (.jsii), generated from hashicorp/google "
        f"and hashicorp/google-beta {PROVIDER}; extracted by local/provider_schema.py for the "
        "types infra/ declares (under beta: those declared with provider = google-beta)",
        "provider": f"hashicorp/google {PROVIDER}",
        **schema,
        "beta": beta,
    }
    OUTPUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    n = sum(len(v) for k, v in schema.items()) + sum(len(v) for v in beta.values())
    print(f"wrote {OUTPUT.relative_to(REPO)}: {n} types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
