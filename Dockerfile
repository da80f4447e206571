# watchkeeper as users run it: a container that mounts /var/run/docker.sock.
#
#   docker build -t watchkeeper .                                        # from python:3.12-slim
#   docker build --build-arg PYTHON_IMAGE=local/python:3.11 -t watchkeeper .   # a local base
#
# Classic builder only (no BuildKit syntax). Works on the official Python image and on a Debian
# base with python3 but no `python` and PEP 668's "externally managed" pip: everything goes into
# a venv. The builder stage makes the wheels (watchkeeper's and its dependencies'); the runtime
# stage installs them offline into /opt/venv, so the final image has no compiler and no sources.
# The dependencies come from requirements.txt, the lock file (`scripts/lock`): exact versions,
# every file checked against its sha256 (--require-hashes), so two builds of one commit ship the
# same libraries.
ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The build front end lives in a venv of its own (PEP 668 bases refuse a global pip install).
RUN python3 -m venv /opt/build
# Dependencies first, from the lock file alone: this layer stays cached until the lock changes,
# so a source change rebuilds only watchkeeper's own wheel.
COPY requirements.txt ./
RUN /opt/build/bin/pip wheel --require-hashes --wheel-dir /wheels/deps -r requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
# watchkeeper itself without dependencies: they are the locked ones above.
RUN /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels/app .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    WATCHKEEPER_LOG_FORMAT=json \
    WATCHKEEPER_STATE_DIR=/var/lib/watchkeeper
# The venv gets no pip of its own: the base's pip installs into it (--python), offline
# (--no-index), exactly the wheels the builder resolved. Nothing in the venv installs anything.
COPY --from=builder /wheels/deps /tmp/wheels
RUN python3 -m venv --without-pip /opt/venv \
    && python3 -m pip --python /opt/venv/bin/python install --no-index --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
COPY --from=builder /wheels/app /tmp/wheels
RUN python3 -m pip --python /opt/venv/bin/python install --no-index --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && mkdir -p /var/lib/watchkeeper \
    && /opt/venv/bin/watchkeeper --version
# Only now: before this, `python3` must be the base's, whose pip does the installing.
ENV PATH=/opt/venv/bin:$PATH
VOLUME ["/var/lib/watchkeeper"]
# The HTTP API, when WATCHKEEPER_HTTP_API_TOKEN is set.
EXPOSE 8080
# SIGTERM lets a swap in progress finish; give the container a long stop grace period
# (compose stop_grace_period, `docker run --stop-timeout 120`, `docker stop -t 120`).
STOPSIGNAL SIGTERM
# Healthy while the daemon's heartbeat (written every 10 s in the state dir) is fresh, or the API's
# /healthz answers when it is on.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["watchkeeper", "healthcheck"]
# Build arguments last: a new revision changes only these metadata layers, not the installs.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="watchkeeper" \
      org.opencontainers.image.description="Keeps Docker containers up to date with their registry images, safely, and e-mails what it did." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      watchkeeper.self="true"
ENTRYPOINT ["watchkeeper"]
CMD ["run"]
