"""Shared fixtures: the local emulator stack (started once per session, on test-only ports, so
a developer's running stack is left alone) and a small synthetic retailer loaded into it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Ports and state for the test session's own stack.
TEST_STACK_ENV = {
    "RETAIL_STACK_DIR": str(REPO / ".local" / "test-stack"),
    "RETAIL_PUBSUB_PORT": "18085",
    "RETAIL_BQ_REST_PORT": "19050",
    "RETAIL_BQ_GRPC_PORT": "19060",
    "RETAIL_BQ_READ_PORT": "19061",
    "RETAIL_GCS_PORT": "14443",
    "RETAIL_FUNCTIONS_BASE_PORT": "18101",
    "RETAIL_CLOUD_IDENTITY_PORT": "18095",
    "RETAIL_CLOUD_RUN_PORT": "18096",
    "RETAIL_API_PORT": "18097",
    "RETAIL_SECRET_MANAGER_PORT": "18098",
    "RETAIL_PUSH_RELAY_PORT": "18099",
    # The test stack stands for the dev deployment: its prefixed names and variables.
    "RETAIL_ENV": "dev",
    # Test chunks take well under a second per call; a killed call is redelivered after this.
    "RETAIL_PUBSUB_MAX_ACK_DEADLINE_S": "15",
}


FUNCTION_ENV = {"RETAIL_PART_MAX_ROWS": "4000", "RETAIL_TIME_BUDGET_S": "0"}


# Fixtures that start real services, and the marker a test that uses them (directly or through
# another fixture) carries: `pytest -m "not stack and not airflow"` runs what needs neither.
NEEDS = {"stack": "stack", "airflow": "airflow"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in NEEDS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def stack():
    """The local stack, up for the whole session and stopped at its end."""
    from local.stack import StackConfig, down, up

    # Small parts and no time budget (local overrides of the declared values): every function
    # call writes one part and hands the rest on, so the tests exercise hand-offs and resumes.
    cfg = StackConfig.from_env({**TEST_STACK_ENV, **FUNCTION_ENV})
    up(cfg, say=lambda _msg: None)
    try:
        yield cfg
    finally:
        down(cfg, say=lambda _msg: None)


@pytest.fixture(autouse=True)
def _deployable_env(request, monkeypatch):
    """A test on the stack runs deployables in this process or its children (a function
    through its test client, the CLI, a job): as deployed, they read their configuration from
    the environment. They get the stack's, for this test only."""
    if "stack" not in request.fixturenames:
        return
    for key, value in request.getfixturevalue("stack").client_env().items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def settings(stack):
    from shared.settings import Settings

    return Settings.from_env({**stack.client_env(), **FUNCTION_ENV})


@pytest.fixture(scope="session")
def retail(stack, settings):
    """A small synthetic retailer loaded into dataset ``retail`` of the test stack."""
    from shared.cli import generate_data

    return generate_data(60_000, 7, stack.names.dataset("source"), settings, quiet=True)


@pytest.fixture(scope="session")
def world():
    """A small synthetic retailer (8 stores, 40 products, a year) and its transactions."""
    import pyarrow as pa

    from shared.synthetic.generate import Shape, build_world, transactions

    world = build_world(Shape(n_stores=8, n_products=40, n_days=364), seed=5)
    return world, pa.Table.from_batches(list(transactions(world)))


@pytest.fixture(scope="session")
def promotion_model(world):
    """A promotion model trained on ``world``, with its holdout scores (the API's and the
    desk's tests serve it)."""
    from shared.training.promotions import evaluate, product_baselines, promotion_rows, train

    w, table = world
    rows = promotion_rows(table, w.promotions)
    model = train(rows)
    model.baselines, model.run_id, model.scores = (
        product_baselines(table),
        "promo-1",
        evaluate(rows),
    )
    return model


@pytest.fixture(scope="session")
def analytics_tables(stack, settings, world):
    """(performance table, stores table, the performance rows) in a dataset of their own, each
    promotion with the revenue predicted before it ran (``backtest``): what promotion
    analytics (the API's and the desk's) read."""
    import io
    import uuid

    import pyarrow.parquet as pq
    from google.cloud import bigquery

    from shared import clients
    from shared.bq_schema import bq_schema
    from shared.training.promotions import backtest, promotion_rows
    from shared.training.promotions_job import performance_table

    w, table = world
    rows = promotion_rows(table, w.promotions)
    perf = performance_table(rows, w.promotions, w.products, backtest(rows))
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
