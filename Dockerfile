# One image for every Django process and worker; STRANGLER_ROLE picks what it runs
# (see scripts/docker-entrypoint.sh), as the seed design picks settings modules.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STRANGLER_VAR_DIR=/app/var

WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
# /run/strangler holds the web processes' Unix sockets (UNIX_SOCKET); docker-compose.yml
# mounts a volume there, which takes this directory's owner when first created.
# The router's C data path (router/_engine.c), built here with a compiler that does not
# stay in the image; without it the router runs on its Python path.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && python scripts/build_engine --force \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --home /app strangler \
    && mkdir -p /app/var /run/strangler \
    && chown strangler /app/var /run/strangler

USER strangler
ENTRYPOINT ["scripts/docker-entrypoint.sh"]
