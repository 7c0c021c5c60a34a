"""A local Secret Manager: the ``google.cloud.secretmanager.v1.SecretManagerService`` gRPC
methods the platform uses (create a secret, add a version, access a version), so the official
``google-cloud-secret-manager`` client code path runs against it.

    python -m local.secret_manager --port 8098 --state .local/stack/secrets

Versions are files ``<state>/<project>/<secret>/<n>``; ``latest`` is the highest number.
Accessing a secret with no version answers NOT_FOUND, as the real service does on a fresh
project before the bootstrap adds one.
"""

from __future__ import annotations

import argparse
import re
from concurrent import futures
from pathlib import Path

import grpc
from google.cloud.secretmanager_v1 import types

_SECRET = re.compile(r"^projects/([a-z0-9-]+)/secrets/([A-Za-z0-9_-]{1,255})$")


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _dir(self, name: str, context: grpc.ServicerContext) -> Path:
        match = _SECRET.match(name)
        if not match:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret name {name!r}")
        return self.root / match.group(1) / match.group(2)

    def create_secret(
        self, request: types.CreateSecretRequest, context: grpc.ServicerContext
    ) -> types.Secret:
        name = f"{request.parent}/secrets/{request.secret_id}"
        path = self._dir(name, context)
        if path.exists():
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        path.mkdir(parents=True)
        return types.Secret(name=name)

    def add_secret_version(
        self, request: types.AddSecretVersionRequest, context: grpc.ServicerContext
    ) -> types.SecretVersion:
        path = self._dir(request.parent, context)
        if not path.is_dir():
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.parent}] not found.")
        number = max((int(p.name) for p in path.iterdir() if p.name.isdigit()), default=0) + 1
        (path / str(number)).write_bytes(request.payload.data)
        return types.SecretVersion(name=f"{request.parent}/versions/{number}", state=1)

    def access_secret_version(
        self, request: types.AccessSecretVersionRequest, context: grpc.ServicerContext
    ) -> types.AccessSecretVersionResponse:
        secret, _, version = request.name.rpartition("/versions/")
        path = self._dir(secret, context)
        numbers = (
            sorted(int(p.name) for p in path.iterdir() if p.name.isdigit()) if path.is_dir() else []
        )
        if version == "latest":
            version = str(numbers[-1]) if numbers else ""
        if not version or int(version) not in numbers:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Secret Version [{request.name}] not found or has no versions.",
            )
        return types.AccessSecretVersionResponse(
            name=f"{secret}/versions/{version}",
            payload=types.SecretPayload(data=(path / version).read_bytes()),
        )


def serve(port: int, state: Path) -> grpc.Server:
    store = Store(state)

    def method(handler, request_type, response_type):  # noqa: ANN001
        return grpc.unary_unary_rpc_method_handler(
            handler,
            request_deserializer=request_type.deserialize,
            response_serializer=response_type.serialize,
        )

    handler = grpc.method_handlers_generic_handler(
        "google.cloud.secretmanager.v1.SecretManagerService",
        {
            "CreateSecret": method(store.create_secret, types.CreateSecretRequest, types.Secret),
            "AddSecretVersion": method(
                store.add_secret_version, types.AddSecretVersionRequest, types.SecretVersion
            ),
            "AccessSecretVersion": method(
                store.access_secret_version,
                types.AccessSecretVersionRequest,
                types.AccessSecretVersionResponse,
            ),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--state", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.state).wait_for_termination()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
