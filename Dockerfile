# syntax=docker/dockerfile:1
#
# One image for all five Minyi services and the web tier. The service is chosen by the command:
#
#   docker run minyi:0.1.0 serve intake        # or routing, suggestions, scoring, identity
#   docker run --entrypoint python minyi:0.1.0 -m services.web     # the citizens' pages
#
# Configuration comes from MINYI_* and OTEL_* environment variables (see docker-compose.yml
# and deploy/k8s/README.md).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# Stage 1: build wheels for the project and all of its dependencies.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The build context is trimmed by .dockerignore (no .git, tests, caches, local state).
# Dependencies are resolved in their own layer first, so code edits reuse it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip wheel --wheel-dir /wheels --requirement /tmp/requirements.txt

COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------
# Stage 2: runtime. Only the installed wheels, no compilers, no source tree.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MINYI_HTTP_HOST=0.0.0.0

# Unprivileged account with a fixed uid/gid, matching runAsUser in deploy/k8s.
RUN groupadd --system --gid 10001 minyi \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/minyi --create-home \
       --shell /usr/sbin/nologin minyi \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/minyi/attachments \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/minyi/secrets
# ↑ intake's uploads, and where `minyi init-secrets` writes in docker-compose: a fresh named volume
# mounted there takes this owner (the root file system is read-only).

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels minyi

WORKDIR /home/minyi
USER 10001:10001

# web, intake, routing, suggestions, scoring, identity
EXPOSE 8100 8101 8102 8103 8104 8105

# No HEALTHCHECK here: the port depends on the service the container runs, so the
# health check lives with the orchestrator (compose healthcheck, Kubernetes probes).

ENTRYPOINT ["minyi"]
CMD ["--help"]
