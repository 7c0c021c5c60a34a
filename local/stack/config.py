"""The stack's configuration: where it lives, its ports, and which deployed environment it
stands for; read once from the environment by the stack's entry points."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.platform import Names
    from shared.topology import PushSubscription


REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A piece of the stack cannot start; the message names it and how to fix it."""


# Variables a developer or a test may set to tune the local deployables (small parts, no time
# budget, fast model polling); they override the environment's declared values and are shown.
TUNING = (
    "RETAIL_PART_MAX_ROWS",
    "RETAIL_PART_TARGET_MB",
    "RETAIL_TIME_BUDGET_S",
    "RETAIL_MAX_STREAMS",
    "RETAIL_MODEL_POLL_S",
    "RETAIL_IAM_PROPAGATION_S",
)


def per_deployable(text: str, apis: bool = False) -> tuple[tuple[str, int], ...]:
    """``plan_fetch=60,fetch_chunk=30`` -> ((deployable, number), ...), checked; with
    ``apis``, a deployable may name one API (``fetch_chunk:bigquerystorage=60``)."""
    from local.faults import APIS
    from shared.platform import deployables

    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, seconds = item.partition("=")
        deployable, _, api = name.partition(":")
        known_api = not api or (apis and api in APIS)
        if deployable not in deployables() or not known_api or not seconds.isdigit():
            raise StackError(
                f"{item!r}: want deployable=number, a deployable of {', '.join(deployables())}"
            )
        out.append((name, int(seconds)))
    return tuple(out)


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives, which ports it uses and which deployed environment it stands for
    (names, prefix and each deployable's variables from ``shared/platform.yaml``)."""

    project: str
    state_dir: Path
    pubsub_port: int
    bq_rest_port: int
    bq_grpc_port: int
    bq_read_port: int
    gcs_port: int
    functions_base_port: int
    min_backoff_s: int
    max_ack_deadline_s: int = 600
    identity_port: int = 8095
    cloud_run_port: int = 8096
    api_port: int = 8097
    secrets_port: int = 8098
    push_relay_port: int = 8099
    environment: str = "dev"
    rbac_config: str = ""
    tuning: tuple[tuple[str, str], ...] = ()
    # Where the Google Cloud SDK lives when ``gcloud`` on the PATH is not the one to use.
    gcloud_sdk_root: str = ""
    # Deployables whose Google API calls are refused with 403 for their first seconds, as
    # while IAM grants propagate after an apply (local/faults.py): (deployable[:api], seconds),
    # e.g. ("fetch_chunk:bigquerystorage", 60) for its Storage Read calls only.
    iam_deny: tuple[tuple[str, int], ...] = ()
    # Functions served with another capacity than the environment declares, for a test that
    # needs a fan-out wider than it: (entry point, requests at once).
    capacities: tuple[tuple[str, int], ...] = ()
    # Production backs off up to 600 s; locally a refused delivery comes back within seconds.
    max_backoff_s: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        from shared.platform import DeclarationError, environment

        env = os.environ if env is None else env

        def port(name: str, default: int) -> int:
            raw = env.get(name, str(default))
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise StackError(f"{name} must be a TCP port number, got {raw!r}")
            return int(raw)

        name = env.get("RETAIL_ENV") or "dev"
        try:
            environment(name)
        except DeclarationError as exc:
            raise StackError(f"RETAIL_ENV: {exc}") from None
        return cls(
            project=env.get("RETAIL_LOCAL_PROJECT", "retail-local"),
            state_dir=Path(env.get("RETAIL_STACK_DIR", REPO / ".local" / "stack")).resolve(),
            pubsub_port=port("RETAIL_PUBSUB_PORT", 8085),
            bq_rest_port=port("RETAIL_BQ_REST_PORT", 9050),
            bq_grpc_port=port("RETAIL_BQ_GRPC_PORT", 9060),
            bq_read_port=port("RETAIL_BQ_READ_PORT", 9061),
            gcs_port=port("RETAIL_GCS_PORT", 4443),
            functions_base_port=port("RETAIL_FUNCTIONS_BASE_PORT", 8101),
            identity_port=port("RETAIL_CLOUD_IDENTITY_PORT", 8095),
            cloud_run_port=port("RETAIL_CLOUD_RUN_PORT", 8096),
            api_port=port("RETAIL_API_PORT", 8097),
            secrets_port=port("RETAIL_SECRET_MANAGER_PORT", 8098),
            push_relay_port=port("RETAIL_PUSH_RELAY_PORT", 8099),
            # Production backs off 10 s to 600 s; locally a retry should be seen within seconds.
            min_backoff_s=int(env.get("RETAIL_PUBSUB_MIN_BACKOFF_S", "1")),
            # A push that never answers (its instance died) is redelivered after the ack
            # deadline; tests with tiny chunks shorten it so a kill is recovered in seconds.
            max_ack_deadline_s=int(env.get("RETAIL_PUBSUB_MAX_ACK_DEADLINE_S", "600")),
            environment=name,
            rbac_config=env.get("RETAIL_RBAC_CONFIG", ""),
            tuning=tuple((k, env[k]) for k in TUNING if env.get(k)),
            gcloud_sdk_root=env.get("RETAIL_GCLOUD_SDK_ROOT", ""),
            iam_deny=per_deployable(env.get("RETAIL_FAULT_IAM_DENY", ""), apis=True),
            capacities=per_deployable(env.get("RETAIL_FUNCTION_CAPACITY", "")),
            max_backoff_s=int(env.get("RETAIL_PUBSUB_MAX_BACKOFF_S", "10")),
        )

    def ack_deadline_s(self, sub: PushSubscription) -> int:
        """A subscription's ack deadline on this stack: the declared one, at most the local
        cap (tests shorten it so a killed delivery is redelivered in seconds)."""
        return min(sub.ack_deadline_s, self.max_ack_deadline_s)

    def with_environment(self, name: str) -> StackConfig:
        from dataclasses import replace

        from shared.platform import DeclarationError, environment

        try:
            environment(name)
        except DeclarationError as exc:
            raise StackError(str(exc)) from None
        return replace(self, environment=name)

    @property
    def names(self) -> Names:
        from shared.platform import Names

        return Names(self.environment, self.project)

    @property
    def region(self) -> str:
        """The environment's one declared location (shared/platform.yaml)."""
        from shared.platform import environment

        return str(environment(self.environment)["region"])

    @property
    def gcs_root(self) -> Path:
        return self.state_dir / "gcs"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def trace_dir(self) -> Path:
        """Where each deployable process notes the Google API calls it makes."""
        return self.state_dir / "calls"

    @property
    def read_proxy_control(self) -> Path:
        """The control file of the stack's Storage Read proxy (local/storage_proxy.py)."""
        return self.state_dir / "read-proxy.json"

    def endpoints(self) -> dict[str, str]:
        """The emulator endpoints: the only thing that differs from the cloud."""
        return {
            "PUBSUB_EMULATOR_HOST": f"{HOST}:{self.pubsub_port}",
            "PUBSUB_PROJECT_ID": self.project,
            "STORAGE_EMULATOR_HOST": f"http://{HOST}:{self.gcs_port}",
            "BIGQUERY_EMULATOR_HOST": f"http://{HOST}:{self.bq_rest_port}",
            # The Storage Read API goes through local/storage_proxy.py, which honours offsets.
            "BIGQUERY_STORAGE_EMULATOR_HOST": f"{HOST}:{self.bq_read_port}",
            "CLOUD_IDENTITY_EMULATOR_HOST": f"http://{HOST}:{self.identity_port}",
            "CLOUD_RUN_EMULATOR_HOST": f"{HOST}:{self.cloud_run_port}",
            "SECRET_MANAGER_EMULATOR_HOST": f"{HOST}:{self.secrets_port}",
        }

    def deployable_env(self, deployable: str) -> dict[str, str]:
        """What Terraform sets for ``deployable`` in this environment, plus the emulator
        endpoints, the call recorder and the identity variable the platform sets."""
        from shared.platform import declaration, deployable_env

        env = deployable_env(deployable, self.environment, self.project, self.rbac_config)
        kind = declaration()["deployables"][deployable]["kind"]
        identity = {
            "function": {"FUNCTION_TARGET": deployable},
            "job": {"CLOUD_RUN_JOB": self.names.job(deployable)},
            "service": {"K_SERVICE": self.names.service(deployable)},
        }[kind]
        return {
            **env,
            **dict(self.tuning),
            **self.endpoints(),
            **identity,
            "RETAIL_CALL_TRACE_DIR": str(self.trace_dir),
            # The call recorder's start-up hook first, then the code.
            "PYTHONPATH": os.pathsep.join((str(REPO / "local" / "deployable_hook"), str(REPO))),
            **self._faults(deployable),
        }

    def _faults(self, deployable: str) -> dict[str, str]:
        """The fault variables ``local/faults.py`` reads in ``deployable``'s process."""
        for name, seconds in self.iam_deny:
            who, _, api = name.partition(":")
            if who == deployable:
                return {"RETAIL_FAULT_IAM_DENY_S": str(seconds), "RETAIL_FAULT_IAM_DENY_API": api}
        return {}

    def client_env(self) -> dict[str, str]:
        """Environment that points the official Google clients (and ``Settings``) at this
        stack, with this environment's names: what the CLI, the tests and the demo use."""
        from shared.platform import deployable_env

        return {
            **deployable_env("plan_fetch", self.environment, self.project),
            **dict(self.tuning),
            **self.endpoints(),
            "GOOGLE_CLOUD_PROJECT": self.project,
            "RETAIL_ARTIFACT_KEYS_FILE": str(self.state_dir / "artifact-keys"),
            "RETAIL_API_URL": f"http://{HOST}:{self.api_port}",
        }

    def function_port(self, entry_point: str) -> int:
        from shared.topology import entry_points

        return self.functions_base_port + entry_points().index(entry_point)
