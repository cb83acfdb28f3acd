# syntax=docker/dockerfile:1
# The hub image: the fleet's ingest, catalog and model registry (`roadloop hub serve`), without
# torch. SQLite under the data volume by default; PostgreSQL with `--db postgresql://...` (see compose.yaml).
# Put TLS in front of it (a reverse proxy or an ingress): the hub itself speaks plain HTTP.
#   docker build -f docker/hub.Dockerfile -t roadloop/hub .
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/roadloop
COPY docker/requirements-hub.txt /tmp/requirements-hub.txt
RUN pip install -r /tmp/requirements-hub.txt

# roadloop_hub needs roadloop_core and nothing else of the workspace (no torch, no vehicle package);
# its dependencies and core's are the pins above, so pip resolves them without fetching anything new.
COPY src/roadloop_core src/roadloop_core
COPY src/roadloop_hub src/roadloop_hub
COPY config config
RUN pip install ./src/roadloop_core ./src/roadloop_hub \
    && useradd --create-home --uid 1000 roadloop \
    && mkdir -p /var/lib/roadloop/hub \
    && chown roadloop:roadloop /var/lib/roadloop/hub
ENV ROADLOOP_CONFIG_DIR=/opt/roadloop/config

USER 1000:1000
VOLUME ["/var/lib/roadloop/hub"]
EXPOSE 8470
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8470/v1/health', timeout=4).status != 200)"]
ENTRYPOINT ["roadloop", "hub", "serve"]
CMD ["--root", "/var/lib/roadloop/hub", "--host", "0.0.0.0", "--port", "8470"]
