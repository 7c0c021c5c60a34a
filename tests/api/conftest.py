"""A promotion model trained on a small synthetic retailer, published on the test stack, and
its realised-performance table in BigQuery: what the promotion endpoints serve."""

import io
import pickle
import uuid

import pyarrow.parquet as pq
import pytest
from google.cloud import bigquery

from shared import clients
from shared.bq_schema import bq_schema
from shared.training.artifacts import Keyring, publish
from shared.training.promotions import promotion_rows
from shared.training.promotions_job import performance_table

KEYRING = Keyring.parse(f"k1:{Keyring.new_key()}")


def publish_promotions(settings, prefix, model, run_id=None):
    if run_id:
        model.run_id = run_id
    uri = f"gs://{settings.data_bucket}/{prefix}/promotions/{model.run_id}.model"
    publish(clients.storage_client(settings), uri, pickle.dumps(model), KEYRING)


@pytest.fixture(scope="session")
def analytics_tables(stack, settings, world):
    """(performance table, stores table, the performance rows) in a dataset of their own."""
    w, table = world
    perf = performance_table(promotion_rows(table, w.promotions), w.promotions, w.products)
    bq = clients.bigquery_client(settings)
    dataset = f"{settings.project}.api_{uuid.uuid4().hex[:6]}"
    bq.create_dataset(dataset)
    gcs = clients.storage_client(settings).bucket(settings.data_bucket)
    names = {}
    for name, data in (("promotion_performance", perf), ("stores", w.stores)):
        buffer = io.BytesIO()
        pq.write_table(data, buffer)
        path = f"api-tables/{dataset}/{name}.parquet"
        gcs.blob(path).upload_from_string(buffer.getvalue())
        bq.load_table_from_uri(
            f"gs://{settings.data_bucket}/{path}",
            f"{dataset}.{name}",
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.PARQUET, schema=bq_schema(data.schema)
            ),
        ).result()
        names[name] = f"{dataset}.{name}"
    return names["promotion_performance"], names["stores"], perf
