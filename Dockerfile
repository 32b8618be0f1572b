# hazwatch service image: `docker compose build hazwatch`, or
#   docker build -t hazwatch . && docker run --env-file .env hazwatch serve
# One process per container; scale out with several containers sharing one
# MQTT shared subscription and one PostgreSQL (docs/deployment.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user that owns only the data directory (spool, embedded
# stores, dead letters).
RUN groupadd --system --gid 10001 hazwatch \
 && useradd --system --uid 10001 --gid hazwatch --home-dir /var/lib/hazwatch \
            --shell /usr/sbin/nologin hazwatch \
 && mkdir -p /var/lib/hazwatch \
 && chown hazwatch:hazwatch /var/lib/hazwatch

WORKDIR /src
# Only what the distribution is built from (pyproject's package list), so a
# local .venv, .git or data directory never ends up in the image.
COPY pyproject.toml README.md ./
# hazwatch/ holds symlinks to the folders beside it (pyproject.toml): copy them all.
COPY hazwatch ./hazwatch
COPY base ./base
COPY devices ./devices
COPY edge ./edge
COPY ingest ./ingest
COPY streams ./streams
COPY alerts ./alerts
COPY notify ./notify
COPY simulators ./simulators
COPY api ./api
# The server only: no extras (OpenCV for the camera agent and amqtt for the demo are
# never imported by `hazwatch serve`).
RUN pip install . && rm -rf /src

WORKDIR /var/lib/hazwatch
USER hazwatch

# Container defaults; docker-compose.yml and .env override the rest.
ENV HAZWATCH_DATA_DIR=/var/lib/hazwatch \
    HAZWATCH_API_HOST=0.0.0.0 \
    HAZWATCH_API_PORT=8080 \
    HAZWATCH_LOG_FORMAT=json
VOLUME ["/var/lib/hazwatch"]
EXPOSE 8080

# /api/health answers 503 when the broker, InfluxDB or the state store is down;
# urlopen raises on it, so the exit code follows. (The slim image has no curl.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HAZWATCH_API_PORT', '8080') + '/api/health', timeout=4)"]

ENTRYPOINT ["hazwatch"]
CMD ["serve"]
