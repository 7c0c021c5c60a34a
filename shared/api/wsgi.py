"""The API as gunicorn (Cloud Run) serves it: ``gunicorn 'shared.api.wsgi:app'``.

Environment: the usual ``Settings`` variables, artifact keys (``RETAIL_ARTIFACT_KEYS*``),
``RETAIL_ARTIFACTS`` (default ``gs://<data bucket>/artifacts``; the pointers are
``pricing/LATEST`` and ``promotions/LATEST`` under it), ``RETAIL_MODEL_POLL_S`` (default 30),
``RETAIL_RESULTS_DATASET`` (default ``<prefix>results``: promotion analytics reads
``promotion_performance`` there), ``RETAIL_STORES_TABLE`` (default
``<project>.retail.stores``) and, locally, ``RETAIL_API_KEY``.
"""

from __future__ import annotations

import os

from shared import clients, log
from shared.api.analytics import PromotionAnalytics
from shared.api.app import MAX_BODY_BYTES, create_app
from shared.api.models import ModelStore
from shared.api.server import BodyDeadline
from shared.settings import Settings
from shared.training.artifacts import Keyring

log.configure()
_settings = Settings.from_env()
# Keys are read when the first artifact is decrypted: the service starts and answers /healthz on
# a fresh project whose key secret has no version yet (/readyz says what is missing).
store = ModelStore(
    clients.storage_client(_settings),
    lambda: Keyring.from_env(secret_client=clients.secret_client(_settings)),
    _settings.artifacts,
    poll_s=float(os.environ.get("RETAIL_MODEL_POLL_S", "30")),
).start()
analytics = PromotionAnalytics(
    clients.bigquery_client(_settings),
    f"{_settings.project}.{_settings.results_dataset}.promotion_performance",
    os.environ.get("RETAIL_STORES_TABLE") or f"{_settings.project}.retail.stores",
)
app = create_app(store, analytics=analytics, api_key=os.environ.get("RETAIL_API_KEY") or None)
# A slow client may not hold a server thread: its body must arrive within 10 s.
app.wsgi_app = BodyDeadline(app.wsgi_app, max_bytes=MAX_BODY_BYTES)  # type: ignore[method-assign]
