#!/usr/bin/env bash
# Run once by the postgres image on an empty volume (/docker-entrypoint-initdb.d), as the superuser. One server, one
# database per service (and one for the console's sessions), each owned by a login role of its own (design.md: a service never reads the other's tables):
# the services never connect as the superuser, and PUBLIC loses CONNECT, so neither role can open the other database.
# Passwords come from the environment (docker-compose.yml passes them) and reach SQL as psql variables, quoted by psql.
set -euo pipefail
: "${MEMBERCENTER_DB_PASSWORD:?}" "${SENDENGINE_DB_PASSWORD:?}" "${CONSOLE_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v mc_password="$MEMBERCENTER_DB_PASSWORD" -v se_password="$SENDENGINE_DB_PASSWORD" \
  -v console_password="$CONSOLE_DB_PASSWORD" <<'SQL'
CREATE ROLE membercenter LOGIN PASSWORD :'mc_password';
CREATE ROLE sendengine LOGIN PASSWORD :'se_password';
CREATE ROLE console LOGIN PASSWORD :'console_password';
CREATE DATABASE membercenter OWNER membercenter;
CREATE DATABASE sendengine OWNER sendengine;
CREATE DATABASE console OWNER console;
REVOKE ALL ON DATABASE membercenter FROM PUBLIC;
REVOKE ALL ON DATABASE sendengine FROM PUBLIC;
REVOKE ALL ON DATABASE console FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE membercenter TO membercenter;
GRANT CONNECT, TEMPORARY ON DATABASE sendengine TO sendengine;
GRANT CONNECT, TEMPORARY ON DATABASE console TO console;
SQL
