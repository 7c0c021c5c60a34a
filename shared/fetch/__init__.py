"""Fast fetch: whole BigQuery tables into Parquet on GCS through a Pub/Sub fan-out."""
