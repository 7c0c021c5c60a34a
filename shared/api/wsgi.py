"""The API as gunicorn (Cloud Run) serves it: ``gunicorn 'shared.api.wsgi:app'``.

Its settings (``shared.settings``): the artifacts location (the pointers are ``pricing/LATEST``
and ``promotions/LATEST`` under it) and keys, how often the pointers are polled, the results
dataset (promotion analytics reads ``promotion_performance`` there), the stores table,
locally the API key, and the desk's (``shared.desk.serve``).
"""

from __future__ import annotations

from shared import clients, log
from shared.api.analytics import PromotionAnalytics
from shared.api.app import MAX_BODY_BYTES, create_app
from shared.api.models import ModelStore
from shared.api.server import BodyDeadline
from shared.desk.serve import desk_from_settings
from shared.settings import Settings
from shared.training.artifacts import Keyring

log.configure()
_settings = Settings.from_env()
# Keys are read when the first artifact is decrypted: the service starts and answers /healthz on
# a fresh project whose key secret has no version yet (/readyz says what is missing).
store = ModelStore(
    clients.storage_client(_settings),
    lambda: Keyring.configured(_settings, lambda: clients.secret_client(_settings)),
    _settings.artifacts,
    poll_s=_settings.model_poll_s,
).start()
analytics = PromotionAnalytics(
    clients.bigquery_client(_settings),
    _settings.results_table("promotion_performance"),
    _settings.stores_table,
)
desk = desk_from_settings(_settings, store, analytics)
if _settings.desk_only and desk is None:
    raise RuntimeError("RETAIL_DESK_ONLY without the desk's access mapping (RETAIL_DESK_ACCESS)")
app = create_app(store, analytics=analytics, api_key=_settings.api_key or None, desk=desk,
                 secret_key=_settings.desk_session_secret or None,
                 api=not _settings.desk_only)  # fmt: skip
# A slow client may not hold a server thread: its body must arrive within 10 s.
app.wsgi_app = BodyDeadline(app.wsgi_app, max_bytes=MAX_BODY_BYTES)  # type: ignore[method-assign]
