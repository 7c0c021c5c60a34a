"""Cloud Run job entry points (thin: read the task environment, call ``shared.training``)."""
