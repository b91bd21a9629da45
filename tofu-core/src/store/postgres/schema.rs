//! The PostgreSQL schema of a pin store, and its creation under an advisory lock.
//!
//! The tables are SQLite's (`store.rs`), with `bytea` for blobs, `bigint` for integers and
//! `COLLATE "C"` on every endpoint column, so that listing by endpoint is in byte order, as
//! SQLite's is. What PostgreSQL adds: the audit log's append-only rule is a trigger that
//! raises (on `UPDATE`, `DELETE` and `TRUNCATE`), and every statement that changes `pin` or
//! `quarantine` advances the `generation` sequence and sends its value with
//! `pg_notify('tofu_certs_changed', …)`, delivered to listeners when the change commits.
//!
//! Names are never left to a session's `search_path`: every connection sets it to
//! `pg_catalog, <the store's schema>` (so that no object another role creates can stand in
//! for a built-in), and the trigger functions run with `pg_catalog, pg_temp` and name the
//! sequence through the schema of the table that fired them. The triggers are `ENABLE
//! ALWAYS`: they fire in sessions with `session_replication_role = replica` too (logical
//! replication's apply workers), where an ordinary trigger is silent.
//!
//! The generation is a sequence rather than a counter row: a sequence never takes a row
//! lock, so two writers of different endpoints never wait for each other on it (nor
//! deadlock across endpoints in a multi-endpoint import). A rolled-back change advances it
//! too, which only makes readers reload once for nothing.

/// The PostgreSQL schema version this build writes (PostgreSQL's own series, from 1).
/// Version 2: trigger functions with a fixed `search_path` and qualified names; triggers
/// `ENABLE ALWAYS`. Version 3: `pin.match_kind`, what a pin matches (certificate or key).
/// Version 4: the `awaited` table, pins made from a fingerprint alone, with its
/// `awaited_changed` trigger.
/// Version 5: `endpoint_mode`, the endpoints in report-only mode, with its notify trigger.
pub(super) const SCHEMA_VERSION: i64 = 5;

/// `pg_advisory_xact_lock` key under which the schema is created ("ToFUcert").
pub(super) const SCHEMA_LOCK_KEY: i64 = 0x546f_4655_6365_7274;

/// The channel of `LISTEN`/`pg_notify`.
pub(super) const CHANNEL: &str = "tofu_certs_changed";

/// Written to `meta` under `application`, so that another application's `meta` table is
/// never mistaken for a store.
pub(super) const APPLICATION: &str = "tofu-certs";

/// Written to `meta` under `created_by`.
pub(super) const WRITER: &str = concat!("tofu-core ", env!("CARGO_PKG_VERSION"));

/// The trigger functions of the current schema, as DDL (`{s}.` is the store's schema):
/// created with it and by every upgrade, so that there is one text of them.
macro_rules! trigger_functions {
    () => {
        r#"CREATE OR REPLACE FUNCTION {s}.tofu_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE OR REPLACE FUNCTION {s}.tofu_changed() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_notify('tofu_certs_changed', pg_catalog.nextval(
        pg_catalog.format('%I.generation', TG_TABLE_SCHEMA)::pg_catalog.regclass)::pg_catalog.text);
    RETURN NULL;
END $$;
"#
    };
}

/// The table of awaited pins (version 4), created with the schema and by the upgrade.
macro_rules! awaited_table {
    () => {
        r#"CREATE TABLE {s}.awaited (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint    text COLLATE "C" NOT NULL,
    fingerprint bytea  NOT NULL CHECK (length(fingerprint) = 32),
    match_kind  text   NOT NULL CHECK (match_kind IN ('certificate', 'key')),
    state       text   NOT NULL CHECK (state IN ('active', 'next')),
    pinned_at   bigint NOT NULL,
    source      text   NOT NULL,
    label       text,
    UNIQUE (endpoint, fingerprint)
);
CREATE TRIGGER awaited_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.awaited
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_changed();
ALTER TABLE {s}.awaited ENABLE ALWAYS TRIGGER awaited_changed;
"#
    };
}

/// The current version, created in one transaction (in the schema `search_path` names first).
pub(super) const SCHEMA: &str = concat!(
    r#"
CREATE TABLE {s}.meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE {s}.pin (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint         text COLLATE "C" NOT NULL,
    state            text   NOT NULL CHECK (state IN ('active', 'next')),
    fingerprint      bytea  NOT NULL CHECK (length(fingerprint) = 32),
    spki_fingerprint bytea  NOT NULL CHECK (length(spki_fingerprint) = 32),
    der              bytea  NOT NULL,
    subject          text   NOT NULL,
    issuer           text   NOT NULL,
    sans             text   NOT NULL,
    not_before       bigint NOT NULL,
    not_after        bigint NOT NULL,
    pinned_at        bigint NOT NULL,
    first_seen       bigint,
    last_seen        bigint,
    times_seen       bigint NOT NULL DEFAULT 0,
    source           text   NOT NULL,
    label            text,
    match_kind       text   NOT NULL DEFAULT 'certificate'
                     CHECK (match_kind IN ('certificate', 'key')),
    UNIQUE (endpoint, fingerprint)
);
CREATE TABLE {s}.quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint    text COLLATE "C" NOT NULL,
    fingerprint bytea  NOT NULL CHECK (length(fingerprint) = 32),
    der         bytea  NOT NULL,
    first_seen  bigint NOT NULL,
    last_seen   bigint NOT NULL,
    times_seen  bigint NOT NULL,
    epoch       bigint NOT NULL DEFAULT 0,
    UNIQUE (endpoint, fingerprint)
);
CREATE TABLE {s}.audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          bigint NOT NULL,
    endpoint    text COLLATE "C" NOT NULL,
    event       text   NOT NULL,
    fingerprint bytea,
    previous    bytea,
    subject     text,
    actor       text   NOT NULL
);
CREATE INDEX audit_by_endpoint ON {s}.audit (endpoint, id);
CREATE INDEX pin_by_endpoint ON {s}.pin (endpoint, state, id);
CREATE TABLE {s}.endpoint_state (
    endpoint       text COLLATE "C" PRIMARY KEY,
    epoch          bigint NOT NULL DEFAULT 0,
    refusals       bigint NOT NULL DEFAULT 0,
    audited        bigint NOT NULL DEFAULT 0,
    failing_since  bigint,
    last_refused   bigint,
    last_presented bytea CHECK (last_presented IS NULL OR length(last_presented) = 32)
);
CREATE TABLE {s}.endpoint_mode (
    endpoint text COLLATE "C" PRIMARY KEY,
    mode     text   NOT NULL CHECK (mode IN ('report-only')),
    since    bigint NOT NULL,
    actor    text   NOT NULL
);
CREATE SEQUENCE {s}.generation;

"#,
    trigger_functions!(),
    r#"CREATE TRIGGER audit_is_append_only BEFORE UPDATE OR DELETE ON {s}.audit
    FOR EACH ROW EXECUTE FUNCTION {s}.tofu_audit_is_append_only();
CREATE TRIGGER audit_is_append_only_truncate BEFORE TRUNCATE ON {s}.audit
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_audit_is_append_only();
CREATE TRIGGER pin_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.pin
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_changed();
CREATE TRIGGER quarantine_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_changed();
CREATE TRIGGER endpoint_mode_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.endpoint_mode
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_changed();
ALTER TABLE {s}.audit ENABLE ALWAYS TRIGGER audit_is_append_only;
ALTER TABLE {s}.audit ENABLE ALWAYS TRIGGER audit_is_append_only_truncate;
ALTER TABLE {s}.pin ENABLE ALWAYS TRIGGER pin_changed;
ALTER TABLE {s}.quarantine ENABLE ALWAYS TRIGGER quarantine_changed;
ALTER TABLE {s}.endpoint_mode ENABLE ALWAYS TRIGGER endpoint_mode_changed;
"#,
    awaited_table!()
);

/// Version 1 to 2, in one transaction: needs the tables' owner.
pub(super) const UPGRADE_1_TO_2: &str = concat!(
    r#"
"#,
    trigger_functions!(),
    r#"ALTER TABLE {s}.audit ENABLE ALWAYS TRIGGER audit_is_append_only;
ALTER TABLE {s}.audit ENABLE ALWAYS TRIGGER audit_is_append_only_truncate;
ALTER TABLE {s}.pin ENABLE ALWAYS TRIGGER pin_changed;
ALTER TABLE {s}.quarantine ENABLE ALWAYS TRIGGER quarantine_changed;
UPDATE {s}.meta SET value = '2' WHERE key = 'schema_version';
"#
);

/// Version 2 to 3, in one transaction: what a pin matches, the exact certificate (every pin
/// until now) or its public key.
pub(super) const UPGRADE_2_TO_3: &str = r#"
ALTER TABLE {s}.pin ADD COLUMN match_kind text NOT NULL DEFAULT 'certificate'
    CHECK (match_kind IN ('certificate', 'key'));
UPDATE {s}.meta SET value = '3' WHERE key = 'schema_version';
"#;

/// Version 3 to 4, in one transaction: pins made from a fingerprint alone. Every role
/// granted privileges on `pin` (a service's role) gets the same on `awaited`, so that an
/// upgrade by the owner does not leave the service's store read-only.
pub(super) const UPGRADE_3_TO_4: &str = concat!(
    awaited_table!(),
    r#"DO $$
DECLARE g record;
BEGIN
    FOR g IN SELECT a.grantee, a.privilege_type
        FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
        WHERE c.oid = '{s}.pin'::pg_catalog.regclass AND a.grantee <> c.relowner
          AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON {s}.awaited TO %s', g.privilege_type,
            CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                 ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END);
    END LOOP;
END $$;
UPDATE {s}.meta SET value = '4' WHERE key = 'schema_version';
"#
);

/// Version 4 to 5, in one transaction: the endpoints in report-only mode. A change to them
/// moves the generation, as one to the pins does: every verifier must see it. Every role
/// granted privileges on `endpoint_state` is granted the same on the new table.
pub(super) const UPGRADE_4_TO_5: &str = r#"
CREATE TABLE {s}.endpoint_mode (
    endpoint text COLLATE "C" PRIMARY KEY,
    mode     text   NOT NULL CHECK (mode IN ('report-only')),
    since    bigint NOT NULL,
    actor    text   NOT NULL
);
CREATE TRIGGER endpoint_mode_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.endpoint_mode
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.tofu_changed();
ALTER TABLE {s}.endpoint_mode ENABLE ALWAYS TRIGGER endpoint_mode_changed;
DO $$
DECLARE r record;
BEGIN
    -- The roles that may use endpoint_state get the same on the new table, so that an
    -- upgrade by the owner leaves every service's role working as it was.
    FOR r IN SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END AS grantee,
                    a.privilege_type
             FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
             WHERE c.oid = '{s}.endpoint_state'::pg_catalog.regclass AND a.grantee <> c.relowner
    LOOP
        EXECUTE pg_catalog.format('GRANT %s ON TABLE %s TO %s', r.privilege_type,
            '{s}.endpoint_mode'::pg_catalog.regclass, r.grantee);
    END LOOP;
END $$;
UPDATE {s}.meta SET value = '5' WHERE key = 'schema_version';
"#;

/// The schema that holds the store: the one of the `meta` table the role's `search_path`
/// finds, else (for a store to create) the first schema of the path that exists.
pub(super) const FIND_SCHEMA: &str = "SELECT coalesce((SELECT n.nspname::text FROM \
     pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.oid = pg_catalog.to_regclass('meta')), pg_catalog.current_schema()::text)";

/// Sets the session's `search_path` ($1: the value) for the rest of the session.
pub(super) const SET_SEARCH_PATH: &str = "SELECT pg_catalog.set_config('search_path', $1, false)";

/// `template` (DDL naming every object as `{s}.name`) for a store in `schema`: DDL never
/// leaves a name to the search path, which puts pg_catalog first.
pub(super) fn ddl(template: &str, schema: &str) -> String {
    template.replace("{s}.", &format!("{}.", quote_ident(schema)))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `search_path` for a store in `schema`: the catalog first, so that nothing in the store's
/// schema (where another role may create objects, as in `public` before PostgreSQL 15) stands
/// in for a built-in function or operator.
pub(super) fn search_path(schema: &str) -> String {
    format!("pg_catalog, {}", quote_ident(schema))
}

/// How many of the store's five triggers are there and `ENABLE ALWAYS`: 4, or the store's
/// changes may go unnoticed (a disabled notify trigger) or its audit log be rewritten.
pub(super) const TRIGGERS: &str = count_triggers!();

/// What [`TRIGGERS`] must count.
pub(super) const TRIGGER_COUNT: i64 = 6;

/// Is there a `meta` table (in the search path), and what does it say: `None` when there is
/// no table; else (application, schema_version, written_by).
pub(super) const PROBE: &str = "SELECT to_regclass('meta') IS NOT NULL";

/// The rows of `meta` that matter, once the table is known to exist.
pub(super) const READ_META: &str =
    "SELECT key, value FROM meta WHERE key IN ('application', 'schema_version', 'created_by', \
     'upgraded_by')";

/// Whether the role may make every change a store makes, and what it misses; a role that may
/// only read gets a read-only store. `has_*_privilege` never fails for an existing object,
/// and is asked one privilege at a time: given a list, it answers whether *any* is held.
pub(super) const PRIVILEGES: &str = "SELECT
    array_remove(ARRAY[
        CASE WHEN has_table_privilege('pin', 'INSERT') AND has_table_privilege('pin', 'UPDATE') AND has_table_privilege('pin', 'DELETE') THEN NULL
             ELSE 'INSERT, UPDATE, DELETE on pin' END,
        CASE WHEN has_table_privilege('quarantine', 'INSERT') AND has_table_privilege('quarantine', 'UPDATE') AND has_table_privilege('quarantine', 'DELETE') THEN NULL
             ELSE 'INSERT, UPDATE, DELETE on quarantine' END,
        CASE WHEN has_table_privilege('awaited', 'INSERT') AND has_table_privilege('awaited', 'DELETE') THEN NULL
             ELSE 'INSERT, DELETE on awaited' END,
        CASE WHEN has_table_privilege('endpoint_state', 'SELECT') AND has_table_privilege('endpoint_state', 'INSERT') AND has_table_privilege('endpoint_state', 'UPDATE') AND has_table_privilege('endpoint_state', 'DELETE') THEN NULL
             ELSE 'SELECT, INSERT, UPDATE, DELETE on endpoint_state' END,
        CASE WHEN has_table_privilege('endpoint_mode', 'INSERT') AND has_table_privilege('endpoint_mode', 'UPDATE') AND has_table_privilege('endpoint_mode', 'DELETE') THEN NULL
             ELSE 'INSERT, UPDATE, DELETE on endpoint_mode' END,
        CASE WHEN has_table_privilege('audit', 'INSERT') THEN NULL
             ELSE 'INSERT on audit' END,
        CASE WHEN has_sequence_privilege('generation', 'USAGE') THEN NULL
             ELSE 'USAGE on sequence generation' END,
        CASE WHEN pg_is_in_recovery() THEN 'the server is a read-only standby' ELSE NULL END,
        CASE WHEN current_setting('default_transaction_read_only') = 'on'
             THEN 'default_transaction_read_only is on' ELSE NULL END
    ], NULL)";
