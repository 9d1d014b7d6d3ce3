-- One role and one database per deployable, and a read-only `legacy` role for sync.
--
--   psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -f scripts/db/roles.sql
--
-- Creates LOGIN roles monolith, vote, choice and legacy; databases monolith, vote and choice,
-- each owned by its role, with CONNECT revoked from PUBLIC so no role can open another's
-- database; and lets `legacy` CONNECT to monolith and SELECT its tables and sequences (now and,
-- through default privileges, those the monolith role creates later). Idempotent: run it again
-- at any time. Run it as a superuser.
--
-- Every name is a psql variable with the default above (-v vote_db=h_vote ...): monolith_db,
-- vote_db, choice_db, monolith_role, vote_role, choice_role, legacy_role. Passwords come from
-- the environment when set (MONOLITH_DB_PASSWORD, VOTE_DB_PASSWORD, CHOICE_DB_PASSWORD,
-- LEGACY_DB_PASSWORD); without them the roles have no password (trust or peer auth).

\set ON_ERROR_STOP on
\if :{?monolith_db}
\else
    \set monolith_db monolith
\endif
\if :{?vote_db}
\else
    \set vote_db vote
\endif
\if :{?choice_db}
\else
    \set choice_db choice
\endif
\if :{?monolith_role}
\else
    \set monolith_role monolith
\endif
\if :{?vote_role}
\else
    \set vote_role vote
\endif
\if :{?choice_role}
\else
    \set choice_role choice
\endif
\if :{?legacy_role}
\else
    \set legacy_role legacy
\endif
\getenv monolith_password MONOLITH_DB_PASSWORD
\getenv vote_password VOTE_DB_PASSWORD
\getenv choice_password CHOICE_DB_PASSWORD
\getenv legacy_password LEGACY_DB_PASSWORD

-- Roles. psql does not expand variables inside a DO body, so the names travel as a setting.
SELECT set_config(
    'strangler.roles',
    concat_ws(',', :'monolith_role', :'vote_role', :'choice_role', :'legacy_role'),
    false
) AS strangler_roles \gset
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY string_to_array(current_setting('strangler.roles'), ',') LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN', name);
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name);
    END LOOP;
END
$$;
\if :{?monolith_password}
    ALTER ROLE :"monolith_role" PASSWORD :'monolith_password';
\endif
\if :{?vote_password}
    ALTER ROLE :"vote_role" PASSWORD :'vote_password';
\endif
\if :{?choice_password}
    ALTER ROLE :"choice_role" PASSWORD :'choice_password';
\endif
\if :{?legacy_password}
    ALTER ROLE :"legacy_role" PASSWORD :'legacy_password';
\endif

-- Databases (CREATE DATABASE cannot run inside a DO block, hence \gexec).
SELECT format('CREATE DATABASE %I OWNER %I', db, owner)
FROM (VALUES (:'monolith_db', :'monolith_role'),
             (:'vote_db', :'vote_role'),
             (:'choice_db', :'choice_role')) AS wanted(db, owner)
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = db)
\gexec

ALTER DATABASE :"monolith_db" OWNER TO :"monolith_role";
ALTER DATABASE :"vote_db" OWNER TO :"vote_role";
ALTER DATABASE :"choice_db" OWNER TO :"choice_role";
REVOKE CONNECT, TEMPORARY ON DATABASE :"monolith_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE :"vote_db" FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE :"choice_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"monolith_db" TO :"legacy_role";

-- Read-only access to the monolith's tables for `legacy`, now and for tables made later.
\connect :"monolith_db"
GRANT USAGE ON SCHEMA public TO :"legacy_role";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"legacy_role";
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO :"legacy_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"monolith_role" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"legacy_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"monolith_role" IN SCHEMA public
    GRANT SELECT ON SEQUENCES TO :"legacy_role";
