"""The models the API serves, loaded from encrypted artifacts and swapped without restart.

Each training job writes a pointer object naming its newest artifact:
``<artifacts>/pricing/LATEST`` (the pricing merge) and ``<artifacts>/promotions/LATEST`` (the
promotion job). :class:`ModelStore` reads both at start and then every ``poll_s`` seconds; a new
artifact is downloaded, decrypted and indexed off to the side, then swapped in with one
assignment, so a request sees either the old model or the new one, never half of each. A
pointer to an artifact that fails to decrypt (tampered, wrong key) leaves the current model
serving.

The artifact keys are read when the first artifact must be decrypted, not at start: on a fresh
project the service starts (and passes its start-up probe) before the key secret has a version
or any model exists, and ``/readyz`` says which of the two is missing.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.api_core import exceptions as gexc
from google.cloud import storage

from shared.identifiers import GcsUri
from shared.log import get_logger
from shared.training.artifacts import ArtifactLayout, Keyring, decrypt
from shared.training.pricing import Rules
from shared.training.promotions import PromotionModel

log = get_logger("shared.api.models")


@dataclass(frozen=True)
class PricingModel:
    run_id: str
    uri: str
    products: dict[int, dict] = field(default_factory=dict)
    # Store prices: each store's rows, each product's rows (by store) and zones.
    stores: dict[int, list[dict]] = field(default_factory=dict)
    store_rows: dict[int, list[dict]] = field(default_factory=dict)
    zones: dict[int, list[dict]] = field(default_factory=dict)
    rules: dict[str, Rules] = field(default_factory=dict)  # each category's, "*" the default
    # Each product's weekly units, price paid and promotion share (shared.training.pricing.history).
    history: dict = field(default_factory=dict)

    def history_of(self, product_id: int) -> list[dict]:
        """The product's weeks, oldest first: ``week``, ``units``, ``price``, ``promo_share``
        (None for a week it sold nothing)."""
        found = self.history.get("products", {}).get(str(product_id))
        if not found:
            return []
        return [
            {"week": week, **{key: values[i] for key, values in found.items()}}
            for i, week in enumerate(self.history.get("weeks", []))
        ]


@dataclass(frozen=True)
class LoadedPromotionModel:
    run_id: str
    uri: str
    model: PromotionModel


class ModelStore:
    def __init__(
        self,
        gcs: storage.Client,
        keyring: Keyring | Callable[[], Keyring],
        artifacts_uri: str,
        poll_s: float = 30.0,
    ) -> None:
        self.gcs, self.poll_s = gcs, poll_s
        self._keyring: Keyring | None = keyring if isinstance(keyring, Keyring) else None
        self._load_keyring = keyring if callable(keyring) else None
        self.artifacts = GcsUri.parse(artifacts_uri.rstrip("/"))
        self.pricing: PricingModel | None = None
        self.promotions: LoadedPromotionModel | None = None
        # Why the last refresh did not load a model (None when it did, or nothing was new).
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._catching_up = threading.Lock()
        self._last_refresh = 0.0

    @property
    def keyring(self) -> Keyring:
        """The artifact keys, read on first use (and again after a failed read)."""
        if self._keyring is None:
            assert self._load_keyring is not None
            self._keyring = self._load_keyring()
        return self._keyring

    def not_ready_reason(self) -> str:
        """Why no model is served yet, for ``/readyz`` and 503 answers."""
        if self.last_error:
            return f"no model loaded yet: {self.last_error}"
        return f"no model published yet under {self.artifacts} (run a training job)"

    def _pointed(self, kind: str, current_uri: str | None) -> tuple[str, bytes] | None:
        """(uri, decrypted bytes) of the artifact ``kind``'s pointer names, if it is new."""
        pointer = ArtifactLayout(self.artifacts).pointer(kind)
        try:
            uri = self.gcs.bucket(pointer.bucket).blob(pointer.path).download_as_text().strip()
        except gexc.NotFound:
            return None
        if uri == current_uri:
            return None
        target = ArtifactLayout(self.artifacts).pointed(kind, uri)
        blob = self.gcs.bucket(target.bucket).blob(target.path).download_as_bytes()
        return uri, decrypt(blob, self.keyring)

    def catch_up(self, min_interval_s: float = 1.0) -> None:
        """Refresh now, for a request that found a model missing: gunicorn's workers each poll
        on their own clock, so one worker may serve a run another has not loaded yet (at most
        once a ``min_interval_s``, whatever the load)."""
        if time.monotonic() - self._last_refresh < min_interval_s:
            return
        with self._catching_up:
            if time.monotonic() - self._last_refresh < min_interval_s:
                return
            with contextlib.suppress(Exception):  # the answer says why no model is served
                self.refresh()

    def refresh(self) -> bool:
        """Load whichever artifact is new; True when a model changed.

        Each kind is tried even if the other fails; the first failure is raised afterwards.
        """
        self._last_refresh = time.monotonic()
        changed, errors = False, []
        for load in (self._refresh_pricing, self._refresh_promotions):
            try:
                changed = load() or changed
            except Exception as exc:
                errors.append(exc)
        self.last_error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
        if errors:
            raise errors[0]
        return changed

    def _refresh_pricing(self) -> bool:
        current = self.pricing
        found = self._pointed("pricing", current.uri if current else None)
        if not found:
            return False
        uri, plain = found
        data = json.loads(plain)
        stores: dict[int, list[dict]] = {}
        store_rows: dict[int, list[dict]] = {}
        zones: dict[int, list[dict]] = {}
        for row in data.get("stores", []):
            stores.setdefault(int(row["store_id"]), []).append(row)
            store_rows.setdefault(int(row["product_id"]), []).append(row)
        for zone in data.get("zones", []):
            zones.setdefault(int(zone["product_id"]), []).append(zone)
        pricing = PricingModel(
            run_id=data["run_id"],
            uri=uri,
            products={int(p["product_id"]): p for p in data["products"]},
            stores=stores,
            store_rows=store_rows,
            zones=zones,
            rules={k: Rules(**v) for k, v in data.get("rules", {}).items()},
            history=data.get("history") or {},
        )
        self.pricing = pricing  # one assignment: requests see the old or the new model
        log.info("serving pricing model %s", pricing.run_id, extra={"run_id": pricing.run_id})
        return True

    def _refresh_promotions(self) -> bool:
        current = self.promotions
        found = self._pointed("promotions", current.uri if current else None)
        if not found:
            return False
        uri, plain = found
        # Unpickling is safe only because the artifact was authenticated (HMAC) with our own
        # key before a byte of it was read.
        model = pickle.loads(plain)
        if not isinstance(model, PromotionModel):
            raise TypeError(f"{uri} is not a promotion model")
        self.promotions = LoadedPromotionModel(model.run_id, uri, model)
        log.info("serving promotion model %s", model.run_id, extra={"run_id": model.run_id})
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as exc:  # keep serving the current model; say why
                log.error("model refresh failed: %s", exc, extra={"error_type": type(exc).__name__})

    def start(self) -> ModelStore:
        try:
            self.refresh()
        except Exception as exc:  # not ready until a good artifact appears; /readyz says so
            log.error("model load failed: %s", exc, extra={"error_type": type(exc).__name__})
        threading.Thread(target=self._loop, daemon=True, name="model-refresh").start()
        return self

    def stop(self) -> None:
        self._stop.set()
