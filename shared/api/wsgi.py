"""The API as gunicorn (Cloud Run) serves it: ``gunicorn 'shared.api.wsgi:app'``.

Environment: the usual ``Settings`` variables, artifact keys (``RETAIL_ARTIFACT_KEYS*``),
``RETAIL_MODEL_POINTER`` (default ``gs://<data bucket>/artifacts/pricing/LATEST``),
``RETAIL_MODEL_POLL_S`` (default 30) and, locally, ``RETAIL_API_KEY``.
"""

from __future__ import annotations

import os

from shared import clients, log
from shared.api.app import create_app
from shared.api.models import ModelStore
from shared.settings import Settings
from shared.training.artifacts import Keyring

log.configure()
_settings = Settings.from_env()
store = ModelStore(
    clients.storage_client(_settings),
    Keyring.from_env(),
    os.environ.get("RETAIL_MODEL_POINTER")
    or f"gs://{_settings.data_bucket}/artifacts/pricing/LATEST",
    poll_s=float(os.environ.get("RETAIL_MODEL_POLL_S", "30")),
).start()
app = create_app(store, api_key=os.environ.get("RETAIL_API_KEY") or None)
