#!/bin/sh
# Runs once when the monolith's PostgreSQL volume is created: the read-only `legacy` role that
# sync jobs read through, and the control database for plan state and history.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$LEGACY_DB_PASSWORD" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE legacy LOGIN PASSWORD :'pw';
GRANT CONNECT ON DATABASE monolith TO legacy;
GRANT USAGE ON SCHEMA public TO legacy;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO legacy;
ALTER DEFAULT PRIVILEGES FOR ROLE monolith IN SCHEMA public GRANT SELECT ON TABLES TO legacy;
CREATE DATABASE strangler_control OWNER monolith;
SQL
