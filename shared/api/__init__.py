"""The prediction and analytics API (Flask, Cloud Run service)."""
