"""The main job, end to end on the local stack: ``python -m local.demo`` (``make demo``).

1. starts the stack (Pub/Sub, BigQuery and GCS emulators, the functions, the local Cloud
   Identity server and Cloud Run runner, the prediction API) and a real Airflow with DAGs of
   two projects;
2. generates and loads the synthetic retailer into BigQuery;
3. publishes a fetch request (as Cloud Scheduler would) and follows the fan-out to the manifest;
4. waits for the training jobs ``fetch-complete`` started (parallel Cloud Run tasks), their
   BigQuery results and encrypted artifacts;
5. asks the API, which picked the new models up by itself, for prices and a planned promotion;
6. ticks the RBAC reconciler and shows a project member seeing only their project's DAGs, then
   moves a person between groups and shows the access follow;
7. saves the run report and prints its path; stops everything unless ``--keep``.

Every step (``steps``) returns what it observed, so the end-to-end test runs the same steps
and asserts; ``__main__`` is the command.
"""

from local.demo.steps import wait_for

__all__ = ["wait_for"]
