# One image for ingest, API and simulators: `docker run <image> ingest|api|simulate ...`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The build metadata first, then the packages listed in pyproject's wheel target (the compose
# test checks that every one of them is copied).
COPY pyproject.toml README.md ./
COPY telemetry ./telemetry
COPY catalogue ./catalogue
COPY sigfox ./sigfox
COPY influx ./influx
COPY ingest ./ingest
COPY api ./api
COPY simulators ./simulators
COPY dashboards ./dashboards
COPY status ./status
RUN pip install . && rm -rf /src

# An unprivileged user; the ingester's spool (TELEMETRY_INGEST_SPOOL_DIR) lives on a volume.
RUN useradd --system --uid 10001 --home-dir /var/lib/telemetry --create-home telemetry
USER telemetry
WORKDIR /var/lib/telemetry

ENTRYPOINT ["telemetry"]
CMD ["--help"]
