# The dev deployment: everything that differs is in shared/platform.yaml (environments.dev).
environment = "dev"
