# The temporary dataset of the chunk_tables fetch strategy: chunk tables expire on their own even
# if a run dies before finalize_fetch drops them.

resource "google_bigquery_dataset" "fetch_tmp" {
  dataset_id                  = "${replace(var.prefix, "-", "_")}fetch_tmp"
  location                    = var.bigquery_location
  default_table_expiration_ms = 24 * 60 * 60 * 1000
  description                 = "Chunk tables of running fetches (chunk_tables strategy)."
}
