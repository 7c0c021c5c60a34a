"""Publishing a promotion model on the test stack (the model and its realised-performance
table in BigQuery are the root conftest's ``promotion_model`` and ``analytics_tables``)."""

import pickle

from shared import clients
from shared.training.artifacts import Keyring, publish

KEYRING = Keyring.parse(f"k1:{Keyring.new_key()}")


def publish_promotions(settings, prefix, model, run_id=None):
    if run_id:
        model.run_id = run_id
    uri = f"gs://{settings.data_bucket}/{prefix}/promotions/{model.run_id}.model"
    publish(clients.storage_client(settings), uri, pickle.dumps(model), KEYRING)
