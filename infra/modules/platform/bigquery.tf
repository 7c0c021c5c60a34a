# The source dataset (the retailer's tables), results (pricing and promotion performance, read by
# the API and analysts) and the temporary dataset of the chunk_tables fetch strategy, whose
# tables expire on their own even if a run dies before finalize_fetch drops them.

resource "google_bigquery_dataset" "source" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a CMEK key ring is an organisation decision outside this module.
  dataset_id  = local.settings.source_dataset
  location    = var.region
  description = "The retailer's tables: transactions, promotions, products, stores."
  labels      = var.labels
}

resource "google_bigquery_dataset" "results" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption; a CMEK key ring is an organisation decision outside this module.
  dataset_id  = "${replace(local.prefix, "-", "_")}${local.platform.datasets.results}"
  location    = var.region
  description = "Model outputs: pricing and pricing_stores (partitioned by run_date) and promotion_performance."
  labels      = var.labels
}

resource "google_bigquery_dataset" "fetch_tmp" {
  #checkov:skip=CKV_GCP_81:Holds only expiring copies of source rows; Google-managed encryption.
  dataset_id                  = "${replace(local.prefix, "-", "_")}${local.platform.datasets.fetch_tmp}"
  location                    = var.region
  default_table_expiration_ms = 24 * 60 * 60 * 1000
  description                 = "Chunk tables of running fetches (chunk_tables strategy)."
  labels                      = var.labels
}
