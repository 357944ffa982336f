#!/bin/sh
# Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d): two
# roles and two databases, so that Dagster's instance storage and the warehouse are separate
# databases with separate owners (deploy/compose.yaml). Names and passwords come from the
# container's environment (deploy/.env); nothing here holds one.
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v dagster_db="$DAGSTER_DB" -v dagster_user="$DAGSTER_DB_USER" \
    -v dagster_password="$DAGSTER_DB_PASSWORD" \
    -v flower_db="$FLOWER_DB" -v flower_user="$FLOWER_DB_USER" \
    -v flower_password="$FLOWER_DB_PASSWORD" <<'SQL'
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_password';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE ROLE :"flower_user" LOGIN PASSWORD :'flower_password';
CREATE DATABASE :"flower_db" OWNER :"flower_user";
-- Neither role may connect to the other's database.
REVOKE CONNECT ON DATABASE :"dagster_db" FROM PUBLIC;
REVOKE CONNECT ON DATABASE :"flower_db" FROM PUBLIC;
SQL
