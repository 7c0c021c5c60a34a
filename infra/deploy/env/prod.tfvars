# The prod deployment: everything that differs is in shared/platform.yaml (environments.prod).
environment = "prod"
