-- Least-privilege roles for the insiders warehouse on PostgreSQL (Amazon RDS included).
--
-- Two roles:
--
--   insiders_job        the pipeline: `insiders load`, `dbt build`, `insiders train` / `insiders score`. Creates
--                       and replaces the tables of the raw, analytics and marts schemas, and owns them.
--   insiders_bi_reader  NOLOGIN group role of Power BI and other readers: USAGE on the marts schema and SELECT
--                       on its tables, nothing else (no raw lines, no staging / intermediate / features, no
--                       segmentation tables, no write anywhere).
--
-- Run it in the warehouse database as a superuser or as its owner with CREATEROLE (the RDS master user), before
-- the first pipeline run and again whenever you like: it is idempotent, and a re-run repairs privileges that
-- were changed by hand. A non-superuser admin becomes a member of insiders_job, because only the owner of the
-- schemas and tables (the pipeline role) may grant on them.
--
--   psql "host=<endpoint> port=5432 dbname=insiders user=<admin> sslmode=verify-full" \
--        -v ON_ERROR_STOP=1 -f deploy/postgres/roles.sql
--
-- psql variables (-v name=value), all optional:
--   reader_role       insiders_bi_reader       another name? set INSIDERS_BI_READER_ROLE to it for the job:
--                                              `insiders run` grants the published marts to that role, and
--                                              refuses to publish when it does not exist
--   job_role          insiders_job
--   raw_schema        raw                      what INSIDERS_RAW_SCHEMA says
--   analytics_schema  analytics                what INSIDERS_PG_SCHEMA says (dbt's target schema)
--   marts_schema      <analytics_schema>_marts where dbt builds the marts (+schema: marts in dbt_project.yml)
--
-- Then let the pipeline and the readers log in (passwords from your secret store, never from this repository).
-- The pipeline either logs in as insiders_job itself (INSIDERS_PG_USER=insiders_job, as docs/operations.md
-- shows), which this script creates without LOGIN and never changes afterwards:
--
--   alter role insiders_job login password '...';
--
-- or as a user of its own that acts as insiders_job in every session, so that the tables it creates are owned
-- by insiders_job and any other member can rebuild them later:
--
--   create role insiders_pipeline login password '...' in role insiders_job;
--   alter role insiders_pipeline set role = 'insiders_job';
--
-- Each reader (the Power BI gateway's connection, an analyst) gets a login user in the reader role:
--
--   create role powerbi_refresh login password '...' in role insiders_bi_reader;
--
-- Why the reader keeps SELECT on the marts after each dbt run: dbt rebuilds a table as a new relation and
-- swaps it in, and the new relation has no grants. Every mart has a post-hook
-- (macros/cross_db/grant_bi_read_access.sql) that grants SELECT to insiders_bi_reader inside the transaction
-- that swaps the table in, so a reader never sees a mart without its grant. ALTER DEFAULT PRIVILEGES is not
-- used: it only covers tables created while the current role is the one it names, so it silently misses tables
-- created by a member user that does not act as insiders_job; the post-hook covers every case. The marts have a
-- schema of their own, so "every table of the marts schema" below is exactly the marts.

\set ON_ERROR_STOP on

\if :{?reader_role}
\else
    \set reader_role insiders_bi_reader
\endif
\if :{?job_role}
\else
    \set job_role insiders_job
\endif
\if :{?raw_schema}
\else
    \set raw_schema raw
\endif
\if :{?analytics_schema}
\else
    \set analytics_schema analytics
\endif
\if :{?marts_schema}
\else
    \set marts_schema :analytics_schema _marts
\endif

begin;

-- ---------------------------------------------------------------------------------------------------- roles

select format('create role %I nologin', :'job_role')
where not exists (select from pg_catalog.pg_roles where rolname = :'job_role')
\gexec

select format('create role %I nologin', :'reader_role')
where not exists (select from pg_catalog.pg_roles where rolname = :'reader_role')
\gexec

-- The reader role is a group: nobody logs in as it, even if it was created by hand with LOGIN.
alter role :"reader_role" nologin;

-- ------------------------------------------------------------------------------------------------ database

-- Nothing but the roles below may create objects: no CREATE in the public schema for every user (the
-- PostgreSQL 15 default, made explicit for older servers; skipped where the admin cannot change it) and no
-- temporary tables for every user.
select 'revoke create on schema public from public'
from pg_catalog.pg_namespace
where nspname = 'public' and pg_catalog.pg_has_role(current_user, nspowner, 'MEMBER')
\gexec
select format('revoke temporary on database %I from public', current_database())
\gexec

-- The pipeline creates schemas when they are missing (the loader runs `create schema if not exists` on every
-- load, which PostgreSQL checks against CREATE on the database) and dbt's incremental models use temporary
-- tables.
select format('grant connect, create, temporary on database %I to %I', current_database(), :'job_role')
\gexec
select format('grant connect on database %I to %I', current_database(), :'reader_role')
\gexec

-- ------------------------------------------------------------------------------------------------- schemas

-- A non-superuser admin must be a member of the pipeline role to give it schemas and to grant on its tables.
select rolsuper as admin_is_superuser from pg_catalog.pg_roles where rolname = current_user
\gset
\if :admin_is_superuser
\else
    select format('grant %I to %I', :'job_role', current_user)
    where not pg_catalog.pg_has_role(current_user, :'job_role', 'MEMBER')
    \gexec
\endif

-- The schemas belong to the pipeline, which creates and replaces everything in them. (Tables created earlier by
-- another user must change owner too: REASSIGN OWNED BY <that user> TO insiders_job.)
create schema if not exists :"raw_schema" authorization :"job_role";
create schema if not exists :"analytics_schema" authorization :"job_role";
create schema if not exists :"marts_schema" authorization :"job_role";
alter schema :"raw_schema" owner to :"job_role";
alter schema :"analytics_schema" owner to :"job_role";
alter schema :"marts_schema" owner to :"job_role";

-- ---------------------------------------------------------------------------------------------- the reader

-- Grants on the pipeline's schemas and tables are given as their owner.
\if :admin_is_superuser
\else
    set local role :"job_role";
\endif

-- No way into the raw and analytics schemas (raw lines, staging, intermediate, features, segmentation tables):
-- without USAGE on a schema no table in it can be read, whatever was granted on the table.
revoke all on schema :"raw_schema" from :"reader_role";
revoke all on schema :"analytics_schema" from :"reader_role";

-- The marts, read only. Start from nothing, so a privilege granted by hand (an INSERT, say) does not survive a
-- re-run; the dbt post-hook re-grants SELECT after each rebuild, this covers tables built before the role
-- existed.
revoke all on schema :"marts_schema" from :"reader_role";
revoke all on all tables in schema :"marts_schema" from :"reader_role";
grant usage on schema :"marts_schema" to :"reader_role";
grant select on all tables in schema :"marts_schema" to :"reader_role";

commit;
