"""The local emulator stack: ``python -m local up|down|status|env|redrive``.

Order matters: the emulators (GCS, Pub/Sub, BigQuery) come first, then the topics, one
functions-framework process per entry point, and last the push relay that reaches them. Every
process runs in its own process group and is stopped by group, so no JVM or worker survives
``down``. State (pid files, logs, GCS data) lives under ``RETAIL_STACK_DIR``.

``config`` (where and what), ``components`` (how each process starts), ``processes``
(supervision), ``provisioning`` (the environment's resources), ``operations`` (dead letters,
runs), ``commands`` (up, down, status) and ``cli``.
"""

from local.stack.cli import main
from local.stack.commands import down, status, up
from local.stack.components import (
    EMULATORS,
    Component,
    api_argv,
    components,
    function_component,
    push_routes,
)
from local.stack.config import HOST, REPO, TUNING, StackConfig, StackError
from local.stack.operations import dead_letters, deliveries, recent_runs, redrive
from local.stack.processes import _start_all, _stop, check_ports, port_holder, running_pgid

__all__ = [
    "EMULATORS",
    "HOST",
    "REPO",
    "TUNING",
    "Component",
    "StackConfig",
    "StackError",
    "_start_all",
    "_stop",
    "api_argv",
    "check_ports",
    "components",
    "dead_letters",
    "deliveries",
    "down",
    "function_component",
    "main",
    "port_holder",
    "push_routes",
    "recent_runs",
    "redrive",
    "running_pgid",
    "status",
    "up",
]
