# The prediction API (Cloud Run service): an asyncio front on $PORT, gunicorn behind it.
# Build from the repository root:  docker build -f docker/api.Dockerfile -t api .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY functions ./functions
COPY local ./local
COPY jobs ./jobs
# This repository itself; its dependency ranges live in pyproject.toml, tested by CI.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[api]' \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

USER 10001
EXPOSE 8080
# The front (slow clients are absorbed there) on $PORT, as Cloud Run sets it; gunicorn behind
# it on a private port (shared/api/serve.py).
CMD ["python", "-m", "shared.api.serve"]
