"""Process supervision: each component in its own process group, pid files, readiness,
logs, and stopping by group so no JVM or worker survives ``down``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from local.stack.components import Component, _port_open
from local.stack.config import REPO, StackConfig, StackError


def _pid_file(cfg: StackConfig, comp: Component) -> Path:
    return cfg.state_dir / "pids" / f"{comp.name}.json"


# Children started by this process: reaped here, or a dead child would look alive (a zombie).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _group_alive(pgid: int) -> bool:
    child = _CHILDREN.get(pgid)
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pgid(cfg: StackConfig, comp: Component) -> int | None:
    """The process group of a running component of this stack, or None."""
    path = _pid_file(cfg, comp)
    try:
        pgid = json.loads(path.read_text())["pgid"]
    except (OSError, ValueError, KeyError):
        return None
    return pgid if _group_alive(pgid) else None


def port_holder(port: int) -> str:
    """Which process listens on ``port`` (pid and command line), as far as /proc tells."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                    return f"pid {proc.name} ({cmd[:120]})"
    return "a process this user cannot see"


def check_ports(
    cfg: StackConfig, comps: list[Component], extra: dict[str, int] | None = None
) -> None:
    """Every port the components (and ``extra``) need is free; else name the port and who
    holds it, before anything starts."""
    busy = []
    wanted = [(c.name, p) for c in comps for p in c.ports(cfg)] + list((extra or {}).items())
    for name, port in wanted:
        if _port_open(port):
            busy.append(f"{name}: port {port} is held by {port_holder(port)}")
    if busy:
        raise StackError(
            "ports in use (stop that process or choose other ports, RETAIL_*_PORT):\n  "
            + "\n  ".join(busy)
        )


def _spawn(cfg: StackConfig, comp: Component, argv: list[str]) -> int:
    check_ports(cfg, [comp])
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(cfg.log_dir / f"{comp.name}.log", "ab")  # noqa: SIM115 - handed to the child
    # A deployable sees what Terraform gives it, not the caller's platform variables.
    identity = ("FUNCTION_", "K_SERVICE", "K_REVISION", "CLOUD_RUN_")
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETAIL_", *identity)) and not k.endswith("_EMULATOR_HOST")
    }
    env = {**inherited, **comp.env(cfg)}
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    log.close()
    _CHILDREN[proc.pid] = proc
    path = _pid_file(cfg, comp)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"pid": proc.pid, "pgid": proc.pid, "argv": argv, "started": time.time()})
    )
    return proc.pid


def _wait_ready(cfg: StackConfig, comp: Component, pgid: int) -> None:
    deadline = time.monotonic() + comp.timeout_s
    while time.monotonic() < deadline:
        if comp.ready(cfg):
            return
        if not _group_alive(pgid):
            break
        time.sleep(0.2)
    tail = _log_tail(cfg, comp)
    _stop(cfg, comp)
    raise StackError(f"{comp.name} did not become ready; last log lines:\n{tail}")


def _log_tail(cfg: StackConfig, comp: Component, lines: int = 15) -> str:
    try:
        return "\n".join(
            (cfg.log_dir / f"{comp.name}.log").read_text(errors="replace").splitlines()[-lines:]
        )
    except OSError:
        return "(no log)"


def _stop(cfg: StackConfig, comp: Component) -> bool:
    path = _pid_file(cfg, comp)
    pgid = running_pgid(cfg, comp)
    stopped = False
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            while _group_alive(pgid):
                time.sleep(0.05)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _start_all(cfg: StackConfig, comps: list[Component], say: Callable[[str], None]) -> None:
    """Start the components that are not running, in parallel, and wait until all are ready."""
    todo = []
    for comp in comps:
        if running_pgid(cfg, comp) is not None and comp.ready(cfg):
            say(f"  {comp.name:<28} already running")
        else:
            todo.append(comp)
    # Resolve every command line first: a missing piece is reported before anything starts.
    argvs = [comp.argv(cfg) for comp in todo]
    started: list[tuple[Component, int]] = []
    try:
        for comp, argv in zip(todo, argvs, strict=True):
            _stop(cfg, comp)  # a stale or unhealthy leftover
            started.append((comp, _spawn(cfg, comp, argv)))
        for comp, pgid in started:
            t0 = time.monotonic()
            _wait_ready(cfg, comp, pgid)
            say(f"  {comp.name:<28} started (pid {pgid}, ready in {time.monotonic() - t0:.1f}s)")
    except BaseException:
        for comp, _pgid in started:  # leave nothing half-started behind
            _stop(cfg, comp)
        raise
