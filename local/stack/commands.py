"""``up``, ``down`` and ``status`` of the whole stack."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from local.stack.components import EMULATORS, components
from local.stack.config import StackConfig, StackError
from local.stack.processes import _start_all, _stop, check_ports, running_pgid
from local.stack.provisioning import ensure_resources


def up(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Start whatever is not running yet; safe to call again."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    marker = cfg.state_dir / "environment"
    running = marker.read_text().strip() if marker.exists() else cfg.environment
    if running != cfg.environment and any(running_pgid(cfg, c) is not None for c in components()):
        raise StackError(
            f"the stack in {cfg.state_dir} runs environment {running!r}; stop it first "
            f"(python -m local down) or use another RETAIL_STACK_DIR"
        )
    marker.write_text(cfg.environment)
    if not any(running_pgid(cfg, c) is not None for c in components()):
        # A fresh start: the calls and logs of this run only (the emulators number messages
        # from 1 again, so an old log line could pass for a new one).
        shutil.rmtree(cfg.trace_dir, ignore_errors=True)
        shutil.rmtree(cfg.log_dir, ignore_errors=True)
    check_ports(cfg, [c for c in components() if running_pgid(cfg, c) is None])
    say(
        f"  {'environment':<28} {cfg.environment}: names and variables of infra/deploy with "
        f"env/{cfg.environment}.tfvars (shared/platform.yaml)"
        + (
            f"; local overrides {', '.join(f'{k}={v}' for k, v in cfg.tuning)}"
            if cfg.tuning
            else ""
        )
    )
    keys = cfg.state_dir / "artifact-keys"
    if not keys.exists():  # the local stand-in for the Secret Manager secret
        from cryptography.fernet import Fernet

        keys.write_text(f"local-1:{Fernet.generate_key().decode()}\n")
        keys.chmod(0o600)
    _start_all(cfg, list(EMULATORS), say)
    ensure_resources(cfg, say)
    _start_all(cfg, [c for c in components() if c not in EMULATORS], say)
    ensure_resources(cfg, lambda _msg: None)  # push endpoints now answer
    (cfg.state_dir / "env").write_text(
        "".join(f"export {k}={v}\n" for k, v in cfg.client_env().items())
    )


def down(cfg: StackConfig, say: Callable[[str], None] = print) -> None:
    """Stop every process of the stack, functions first; safe to call when nothing runs."""
    for comp in reversed(components()):
        if _stop(cfg, comp):
            say(f"  {comp.name:<28} stopped")


def status(cfg: StackConfig) -> list[tuple[str, str, str]]:
    """(component, state, detail) for every component; state is up, unhealthy or down."""
    rows = []
    for comp in components():
        pgid = running_pgid(cfg, comp)
        ports = ",".join(str(p) for p in comp.ports(cfg))
        if pgid is None:
            rows.append((comp.name, "down", f"port {ports}"))
        else:
            state = "up" if comp.ready(cfg) else "unhealthy"
            rows.append((comp.name, state, f"pid {pgid}, port {ports}"))
    return rows
