# The training jobs (Cloud Run jobs): `python -m jobs.pricing` / `python -m jobs.promotions`,
# chosen by the job's command in Terraform. Build from the repository root:
#   docker build -f docker/training.Dockerfile -t training .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY functions ./functions
COPY local ./local
COPY jobs ./jobs
# This repository itself; its dependency ranges live in pyproject.toml, tested by CI.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[training]' \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app

USER 10001
CMD ["python", "-m", "jobs.pricing"]
