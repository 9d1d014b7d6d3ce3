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
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --home /app strangler \
    && mkdir -p /app/var \
    && chown strangler /app/var

USER strangler
ENTRYPOINT ["scripts/docker-entrypoint.sh"]
