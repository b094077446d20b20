//! Opening the database: pragmas, then numbered append-only migrations.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use std::path::Path;
use std::sync::LazyLock;

use crate::error::{Error, Result};

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("../migrations/001_visits.sql")),
        M::up(include_str!("../migrations/002_sync_state.sql")),
        M::up(include_str!("../migrations/003_sync_server.sql")),
        M::up(include_str!("../migrations/004_signatures.sql")),
        M::up(include_str!(
            "../migrations/005_receipts_from_signatures.sql"
        )),
        M::up(include_str!("../migrations/006_own_changes.sql")),
        M::up(include_str!("../migrations/007_signature_ranges_only.sql")),
        M::up(include_str!("../migrations/008_unverified_visits.sql")),
        M::up(include_str!("../migrations/009_feed_one_row_per_visit.sql")),
        M::up(include_str!("../migrations/010_evidence.sql")),
        M::up(include_str!("../migrations/011_signatures_by_visit.sql")),
        M::up(include_str!("../migrations/012_admin_log.sql")),
        M::up(include_str!("../migrations/013_console.sql")),
    ])
});

/// The schema version a fully migrated store has.
pub const SCHEMA_VERSION: usize = 13;

pub(crate) fn migrations() -> &'static Migrations<'static> {
    &MIGRATIONS
}

/// Makes the database's folder (`0700`) and file (`0600`) before SQLite
/// opens it, so that SQLite creates the `-wal` and `-shm` files, which take
/// the main file's mode, `0600` too. A folder or file found more open than
/// that (made by an older build, or by hand) is tightened, with a warning
/// in the log. A folder with the sticky bit (a shared one such as `/tmp`)
/// is left as it is. Unix only; elsewhere the folder is only created.
pub(crate) fn prepare_private(path: &Path) -> Result<()> {
    let err = |p: &Path, e: std::io::Error| Error::database_cause(p.display().to_string(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|e| err(dir, e))?;
    }
    private::create_file(path).map_err(|e| err(path, e))?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let side = std::path::PathBuf::from(side);
        private::tighten(&side, private::FILE).map_err(|e| err(&side, e))?;
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        private::dir_mode(&mut builder);
        builder.create(dir)?;
    }
    private::tighten(dir, private::DIR)
}

#[cfg(unix)]
mod private {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    pub const DIR: u32 = 0o700;
    pub const FILE: u32 = 0o600;

    pub fn dir_mode(builder: &mut std::fs::DirBuilder) {
        builder.mode(DIR);
    }

    /// Creates the file `0600` if it does not exist, else tightens it.
    pub fn create_file(path: &Path) -> std::io::Result<()> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path, FILE),
            Err(e) => Err(e),
        }
    }

    /// Takes group and other permissions off `path` when it exists and has
    /// any (keeping the owner's), logging that it did.
    pub fn tighten(path: &Path, wanted: u32) -> std::io::Result<()> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        if meta.is_dir() && mode & 0o1000 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the store's folder is a shared folder (sticky bit): left as it is; give the store a folder of its own");
            return Ok(());
        }
        let new = (mode & 0o700) | (wanted & 0o700);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(new))?;
        tracing::warn!(path = %path.display(), was = format!("{mode:o}"), now = format!("{new:o}"), "the store's folder or file was open to other users: tightened");
        Ok(())
    }
}

#[cfg(not(unix))]
mod private {
    use std::path::Path;

    pub const DIR: u32 = 0;
    pub const FILE: u32 = 0;

    pub fn dir_mode(_: &mut std::fs::DirBuilder) {}

    pub fn create_file(_: &Path) -> std::io::Result<()> {
        Ok(())
    }

    pub fn tighten(_: &Path, _: u32) -> std::io::Result<()> {
        Ok(())
    }
}

/// Pragmas every connection gets. WAL with `synchronous=FULL`: a commit is
/// on disk when it returns, so an acknowledged edit survives a killed
/// process and a power cut.
pub(crate) fn configure(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

pub(crate) fn user_version(conn: &Connection) -> Result<usize> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(0))
}

/// Brings the database to the current schema, refusing one from a newer build.
pub(crate) fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(Error::NewerDatabase {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    migrations()
        .to_latest(conn)
        .map_err(|e| Error::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .expect("prepare");
        stmt.query_map([], |r| {
            Ok(format!(
                "{} {} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default()
            ))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    }

    fn fresh() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        configure(&conn).expect("configure");
        migrate(&mut conn, ":memory:").expect("migrate");
        conn
    }

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
        assert_eq!(user_version(&fresh()).expect("version"), SCHEMA_VERSION);
    }

    #[test]
    fn every_earlier_version_upgrades_to_the_fresh_schema_keeping_data() {
        let expected = schema_of(&fresh());
        for start in 0..SCHEMA_VERSION {
            let mut conn = Connection::open_in_memory().expect("open");
            configure(&conn).expect("configure");
            migrations().to_version(&mut conn, start).expect("to start");
            assert_eq!(user_version(&conn).expect("v"), start);
            if start >= 1 {
                conn.execute(
                    "INSERT INTO visits (id, unit_code, unit_name, unit_kind, campaign, team, scheduled_on,
                                         status, conflicts, tally, heads, updated_at)
                     VALUES ('v-1','u','Sở Nội vụ','department','c','t','2015-08-31','draft',0,'{}','[]','now')",
                    [],
                )
                .expect("insert at v1");
                conn.execute("INSERT INTO visit_chunks (visit_id, kind, data) VALUES ('v-1','snapshot',x'00')", [])
                    .expect("chunk at v1");
            }
            if (4..7).contains(&start) {
                conn.execute(
                    "INSERT INTO signatures (visit_id, signer, hashes, ranges, signature, received_at)
                     VALUES ('v-1', 'dev-1', x'0102', '[[\"aa\",1,2]]', x'07', 'now')",
                    [],
                )
                .expect("signature at v4");
            }
            if start >= 7 {
                conn.execute(
                    "INSERT INTO signatures (visit_id, signer, ranges, signature, received_at)
                     VALUES ('v-1', 'dev-1', '[[\"aa\",1,2]]', x'07', 'now')",
                    [],
                )
                .expect("signature at v7");
            }
            if (3..9).contains(&start) {
                // Three updates of v-1 and one of v-2, each under its own nonce.
                for (visit, nonce) in [("v-1", 11), ("v-2", 12), ("v-1", 13), ("v-1", 14)] {
                    conn.execute(
                        "INSERT INTO feed (visit_id, team, nonce) VALUES (?1, 't', ?2)",
                        rusqlite::params![visit, nonce],
                    )
                    .expect("feed row at v3");
                }
            }
            migrate(&mut conn, ":memory:").expect("upgrade");
            assert_eq!(schema_of(&conn), expected, "upgrading from version {start}");
            if (3..9).contains(&start) {
                // Version 9: one feed row per visit, its latest; every row
                // written before stays a valid cursor as a generation of its own.
                let rows: Vec<(i64, String)> = conn
                    .prepare("SELECT seq, visit_id FROM feed ORDER BY seq")
                    .and_then(|mut st| {
                        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                            .collect::<std::result::Result<_, _>>()
                    })
                    .expect("feed rows");
                assert_eq!(rows, vec![(2, "v-2".to_owned()), (4, "v-1".to_owned())]);
                let generations: Vec<(i64, i64, i64)> = conn
                    .prepare(
                        "SELECT nonce, first_seq, last_seq FROM feed_generations ORDER BY nonce",
                    )
                    .and_then(|mut st| {
                        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                            .collect::<std::result::Result<_, _>>()
                    })
                    .expect("generations");
                assert_eq!(
                    generations,
                    vec![(11, 1, 1), (12, 2, 2), (13, 3, 3), (14, 4, 4)]
                );
            }
            if start >= 1 {
                let name: String = conn
                    .query_row("SELECT unit_name FROM visits WHERE id='v-1'", [], |r| {
                        r.get(0)
                    })
                    .expect("data kept");
                assert_eq!(name, "Sở Nội vụ");
                // Version 8: a visit stored before was loaded when stored.
                let verified: i64 = conn
                    .query_row("SELECT verified FROM visits WHERE id='v-1'", [], |r| {
                        r.get(0)
                    })
                    .expect("verified flag");
                assert_eq!(verified, 1);
                if start >= 4 {
                    // Version 7 keeps a signature's ranges, not its hashes.
                    let ranges: String = conn
                        .query_row("SELECT ranges FROM signatures", [], |r| r.get(0))
                        .expect("signature kept");
                    assert_eq!(ranges, r#"[["aa",1,2]]"#);
                    assert!(
                        conn.prepare("SELECT hashes FROM signatures").is_err(),
                        "the hash copy is gone"
                    );
                }
            }
            if (1..6).contains(&start) {
                // A store that held visits before own changes were recorded
                // scans them once at its next sync.
                let scan: String = conn
                    .query_row(
                        "SELECT value FROM settings WHERE key = 'sign.scan_all'",
                        [],
                        |r| r.get(0),
                    )
                    .expect("scan_all set");
                assert_eq!(scan, "1");
            }
        }
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = fresh();
        conn.pragma_update(None, "user_version", 99).expect("bump");
        match migrate(&mut conn, "x.db") {
            Err(Error::NewerDatabase {
                found: 99,
                supported: SCHEMA_VERSION,
                ..
            }) => {}
            other => panic!("expected NewerDatabase, got {other:?}"),
        }
    }
}
