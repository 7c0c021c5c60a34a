"""Access control: Airflow roles reconciled from Google Groups (see DESIGN.md, RBAC reconciler)."""
