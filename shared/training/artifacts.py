"""Model artifacts encrypted at rest: AES-128-CBC + HMAC-SHA256, encrypt-then-MAC (Fernet),
behind a small versioned header naming the key, with rotation.

    RETAIL-ARTIFACT/1 key=<key id>\\n<Fernet token>

Keys come as ``id:urlsafe-base64-32-bytes`` pairs, newest first, from
``RETAIL_ARTIFACT_KEYS`` (comma-separated) or ``RETAIL_ARTIFACT_KEYS_FILE`` locally, and from
Secret Manager in the cloud (one secret, same format, its latest version). Encryption uses the
newest key; decryption the key the header names (any known key, during a rotation). A
tampered, truncated or unknown-key artifact is refused with :class:`ArtifactError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from google.api_core import exceptions as gexc

from shared.errors import PermanentError
from shared.identifiers import GcsUri

if TYPE_CHECKING:
    from google.cloud import storage

    from shared.settings import Settings

MAGIC = b"RETAIL-ARTIFACT/1"
# Beside each kind's artifacts, the object naming the newest one (what the API polls).
POINTER = "LATEST"
_HEADER = re.compile(rb"RETAIL-ARTIFACT/(\d+) key=([A-Za-z0-9_.-]{1,64})\n")


class ArtifactError(PermanentError):
    """An artifact cannot be trusted or read; the message says why (never the key)."""


@dataclass(frozen=True)
class Keyring:
    """Key id -> Fernet key, and which id is the newest (used to encrypt)."""

    keys: Mapping[str, bytes]
    newest: str

    @classmethod
    def parse(cls, text: str) -> Keyring:
        pairs = [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]
        keys: dict[str, bytes] = {}
        for pair in pairs:
            kid, sep, key = pair.partition(":")
            if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", kid):
                raise ArtifactError("artifact keys must be 'id:key' pairs with a plain id")
            try:
                Fernet(key.encode())
            except ValueError:
                raise ArtifactError(f"artifact key {kid!r} is not a Fernet key") from None
            keys[kid] = key.encode()
        if not keys:
            raise ArtifactError("no artifact keys configured")
        return cls(keys, next(iter(keys)))

    @classmethod
    def configured(
        cls, settings: Settings, secret_client: Callable[[], Any] | None = None
    ) -> Keyring:
        """Keys from the settings' literal keys, their file, or the newest version of their
        Secret Manager secret (``secret_client`` makes a ``SecretManagerServiceClient``; called
        only then)."""
        if settings.artifact_keys:
            return cls.parse(settings.artifact_keys)
        if settings.artifact_keys_file:
            return cls.parse(Path(settings.artifact_keys_file).read_text())
        if settings.artifact_keys_secret:
            if secret_client is None:
                raise ArtifactError("reading the artifact keys' secret needs a secret client")
            name = f"{settings.artifact_keys_secret}/versions/latest"
            try:
                version = secret_client().access_secret_version(name=name)
            except (gexc.NotFound, gexc.FailedPrecondition) as exc:
                raise ArtifactError(
                    f"no artifact keys: secret {settings.artifact_keys_secret} has no "
                    f"enabled version ({exc.message}); add one (README, deploying)"
                ) from None
            return cls.parse(version.payload.data.decode())
        raise ArtifactError(
            "no artifact keys: set RETAIL_ARTIFACT_KEYS, RETAIL_ARTIFACT_KEYS_FILE or "
            "RETAIL_ARTIFACT_KEYS_SECRET"
        )

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()


def encrypt(data: bytes, keyring: Keyring) -> bytes:
    """The artifact bytes: header naming the newest key, then the Fernet token."""
    token = Fernet(keyring.keys[keyring.newest]).encrypt(data)
    return MAGIC + b" key=" + keyring.newest.encode() + b"\n" + token


def decrypt(blob: bytes, keyring: Keyring) -> bytes:
    """The plaintext of an artifact, or :class:`ArtifactError` saying what is wrong."""
    match = _HEADER.match(blob)
    if not match:
        raise ArtifactError("not an encrypted artifact (missing or damaged header)")
    if match.group(1) != b"1":
        raise ArtifactError(f"artifact format version {match.group(1).decode()} is not supported")
    kid = match.group(2).decode()
    key = keyring.keys.get(kid)
    if key is None:
        raise ArtifactError(f"artifact was encrypted with key {kid!r}, which is not configured")
    try:
        return Fernet(key).decrypt(blob[match.end() :])
    except InvalidToken:
        raise ArtifactError(
            f"artifact failed authentication with key {kid!r}: tampered, truncated or wrong key"
        ) from None


@dataclass(frozen=True)
class ArtifactLayout:
    """The names below the artifacts location: per kind (``pricing``, ``promotions``) the
    ``LATEST`` pointer and each run's model, and a promotion run's scores, report and
    realised-performance table."""

    root: GcsUri

    @classmethod
    def of(cls, artifacts: str) -> ArtifactLayout:
        return cls(GcsUri.parse(artifacts.rstrip("/")))

    def pointer(self, kind: str) -> GcsUri:
        return self.root.child(f"{kind}/{POINTER}")

    def model(self, kind: str, run_id: str) -> GcsUri:
        return self.root.child(f"{kind}/{run_id}.model")

    def pointed(self, kind: str, uri: str) -> GcsUri:
        """The artifact a ``kind`` pointer names, refused unless it is one of that kind's
        models below this root (a pointer is data: it must not send a reader elsewhere)."""
        try:
            target = GcsUri.parse(uri)
        except ValueError as exc:
            raise ArtifactError(f"{kind} pointer: {exc}") from None
        home = self.root.child(kind)
        inside = target.bucket == home.bucket and target.path.startswith(f"{home.path}/")
        if not inside or "/" in target.path[len(home.path) + 1 :] or not uri.endswith(".model"):
            raise ArtifactError(f"{kind} pointer names {uri}, not a model below {home}")
        return target

    def scores(self, run_id: str) -> GcsUri:
        return self.root.child(f"promotions/{run_id}.scores.json")

    def report(self, run_id: str) -> GcsUri:
        return self.root.child(f"promotions/{run_id}.report.html")

    def performance(self, run_id: str) -> GcsUri:
        return self.root.child(f"promotions/{run_id}.performance.parquet")

    def latest_scores(self, gcs: storage.Client) -> dict | None:
        """The holdout scores of the newest promotion model, or None if there is none yet."""
        pointer = gcs.bucket(self.root.bucket).get_blob(self.pointer("promotions").path)
        if pointer is None:
            return None
        model = GcsUri.parse(pointer.download_as_text().strip())
        run_id = model.path.rsplit("/", 1)[-1].removesuffix(".model")
        scores = gcs.bucket(self.root.bucket).get_blob(self.scores(run_id).path)
        return None if scores is None else json.loads(scores.download_as_text())


def publish(gcs: storage.Client, uri: str, plaintext: bytes, keyring: Keyring) -> None:
    """Write ``plaintext`` encrypted to ``uri``, then point the ``LATEST`` object beside it at
    it: written last, so a reader that follows the pointer never finds the artifact missing."""
    target = GcsUri.parse(uri)
    bucket = gcs.bucket(target.bucket)
    bucket.blob(target.path).upload_from_string(encrypt(plaintext, keyring))
    bucket.blob(f"{target.path.rsplit('/', 1)[0]}/{POINTER}").upload_from_string(uri)
