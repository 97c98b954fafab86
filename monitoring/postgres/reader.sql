-- The read-only role Grafana's PostgreSQL datasource logs in as (Logs and Overview dashboards):
-- it reads every table (pg_read_all_data, PostgreSQL 14+) and can change nothing, so a query
-- typed into a dashboard cannot touch the data. Run once as a superuser: by the postgres image
-- on its first start (docker-compose.yml mounts this file into /docker-entrypoint-initdb.d),
-- and by scripts/stack.sh natively.
SELECT 'CREATE ROLE logstream_reader LOGIN' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'logstream_reader')\gexec
ALTER ROLE logstream_reader LOGIN PASSWORD 'logstream_reader';
ALTER ROLE logstream_reader SET default_transaction_read_only = on;
GRANT pg_read_all_data TO logstream_reader;
