"""The models the API serves, loaded from encrypted artifacts and swapped without restart.

A pointer object (``artifacts/pricing/LATEST``, written by the training merge) names the
newest artifact. :class:`ModelStore` reads it at start and then every ``poll_s`` seconds; a new
artifact is downloaded, decrypted and indexed off to the side, then swapped in with one
assignment, so a request sees either the old model or the new one, never half of each.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.identifiers import GcsUri
from shared.log import get_logger
from shared.training.artifacts import Keyring, decrypt

log = get_logger("shared.api.models")


@dataclass(frozen=True)
class PricingModel:
    run_id: str
    uri: str
    products: dict[int, dict] = field(default_factory=dict)


class ModelStore:
    def __init__(
        self, gcs: storage.Client, keyring: Keyring, pointer_uri: str, poll_s: float = 30.0
    ) -> None:
        self.gcs, self.keyring, self.poll_s = gcs, keyring, poll_s
        self.pointer = GcsUri.parse(pointer_uri)
        self.pricing: PricingModel | None = None
        self._stop = threading.Event()

    def refresh(self) -> bool:
        """Load the artifact the pointer names if it is new; True when the model changed."""
        try:
            uri = self.gcs.bucket(self.pointer.bucket).blob(self.pointer.path).download_as_text()
        except gexc.NotFound:
            return False
        uri = uri.strip()
        if self.pricing is not None and self.pricing.uri == uri:
            return False
        target = GcsUri.parse(uri)
        blob = self.gcs.bucket(target.bucket).blob(target.path).download_as_bytes()
        data = json.loads(decrypt(blob, self.keyring))
        model = PricingModel(
            run_id=data["run_id"],
            uri=uri,
            products={int(p["product_id"]): p for p in data["products"]},
        )
        self.pricing = model  # one assignment: requests see the old or the new model
        log.info("serving pricing model %s", model.run_id, extra={"run_id": model.run_id})
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the current model; say why
                log.error("model refresh failed: %s", exc, extra={"error_type": type(exc).__name__})

    def start(self) -> ModelStore:
        self.refresh()
        threading.Thread(target=self._loop, daemon=True, name="model-refresh").start()
        return self

    def stop(self) -> None:
        self._stop.set()
