//! SQLite: the one writer connection and group commit, the checkpointer, the read connections,
//! and the files that only their owner may read.

use super::*;

/// SQLite's one writer connection, and the transaction that units of work share under load
/// (group commit).
///
/// A unit that joins an open transaction runs inside `SAVEPOINT unit` and releases it when it
/// commits; one that begins the transaction needs none (rolling back is rolling it all back). If
/// other units are already waiting for the writer when it commits, it leaves the transaction open
/// for them and waits: the last of a run of units, or a committer task at the back of the queue,
/// commits them all at once and then answers each. The pages a commit writes to the WAL and the
/// write lock taken at `BEGIN` are paid once per transaction instead of once per unit, while each unit
/// still succeeds or fails alone: a failing one rolls back to its savepoint, and no caller hears
/// "committed" before the shared `COMMIT` is done.
pub(crate) struct SqliteWriter {
    pub(super) conn: rusqlite::Connection,
    /// The open transaction, if units have finished in it and wait for its commit, or a unit is
    /// running in it. With the writer free, it is `None` or has finished units.
    pub(super) group: Option<Group>,
    /// The running unit opened `SAVEPOINT unit`.
    pub(super) savepoint: bool,
}

/// One shared SQLite transaction and the units of work waiting for its `COMMIT`.
pub(super) struct Group {
    /// Units released into it and waiting for the commit.
    pub(super) finished: u64,
    /// A committer task has been started for it.
    pub(super) committer: bool,
    /// The finished units' after-commit hooks, in commit order.
    pub(super) hooks: Vec<Box<dyn FnOnce() + Send>>,
    pub(super) wrote_outbox: bool,
    pub(super) wrote_timers: bool,
    /// Tells the waiting units how the commit went; dropped unsent if the transaction is lost.
    pub(super) done: watch::Sender<Option<Result<(), Arc<str>>>>,
}

/// The most units one transaction carries, so that a steady stream of writers is still answered.
pub(super) const GROUP_MAX: u64 = 64;

impl SqliteWriter {
    /// Opens a unit of work: joins the open transaction or begins one.
    pub(super) fn start_unit(&mut self) -> Result<(), DbError> {
        self.savepoint = self.group.is_some();
        if !self.savepoint {
            // IMMEDIATE takes the write lock up front, so a transaction never fails half-way
            // trying to upgrade a read lock.
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.group = Some(Group {
                finished: 0,
                committer: false,
                hooks: Vec::new(),
                wrote_outbox: false,
                wrote_timers: false,
                done: watch::channel(None).0,
            });
        } else if let Err(e) = self.conn.execute_batch("SAVEPOINT unit") {
            self.savepoint = false;
            self.abandon_unit();
            return Err(e.into());
        }
        Ok(())
    }

    /// Ends the running unit's part: its changes stay in the open transaction.
    pub(super) fn finish_unit(&mut self) -> rusqlite::Result<()> {
        if self.savepoint {
            self.conn.execute_batch("RELEASE unit")?;
            self.savepoint = false;
        }
        Ok(())
    }

    /// Undoes the running unit alone, keeping the finished units' work for the shared commit.
    pub(super) fn abandon_unit(&mut self) {
        let others = self.group.as_ref().is_some_and(|g| g.finished > 0);
        if std::mem::take(&mut self.savepoint)
            && others
            && self
                .conn
                .execute_batch("ROLLBACK TO unit; RELEASE unit")
                .is_ok()
            && !self.conn.is_autocommit()
        {
            return;
        }
        // Nothing else in the transaction, or SQLite already rolled all of it back (it does on
        // I/O errors): end it. Dropping the group tells its waiting units they were not committed.
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.group = None;
    }
}

/// Runs a call that may wait for the disk: on a multi-threaded runtime, other tasks move to
/// another worker meanwhile.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Copies SQLite's WAL back into the database file on a thread and connection of its own, a
/// moment after commits, so that no commit pays for it. Left to the writer (SQLite's
/// `wal_autocheckpoint`), every 1,000th page appended made one commit copy them all and wait for
/// the disk while every other unit waited for the writer. A passive checkpoint runs beside the
/// writer and its readers without blocking them; durability is the same, since a checkpoint only
/// moves pages already committed to the WAL. The thread ends when the database is dropped.
///
/// SQLite starts the WAL file over only once a checkpoint has caught up with every commit, and
/// under a steady stream of writes a passive one never quite does. So the writer still checkpoints
/// itself at [`WAL_BACKSTOP`] pages, finding most of them already copied, and the
/// WAL of a busy database grows to about that size (40 MiB) before it starts over.
pub(super) struct Checkpointer {
    pub(super) wake: std::sync::mpsc::SyncSender<()>,
}

/// How long after a commit the checkpointer runs, so that the pages of the commits meanwhile are
/// copied together: a hot page (an index's, the outbox's tail) once per checkpoint, not per commit.
pub(super) const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);

/// The WAL size, in pages, at which the writer checkpoints itself after all. At 4,000, bookings
/// were 20 % slower: the writer's own checkpoints came 2.5 times as often.
pub(super) const WAL_BACKSTOP: u32 = 10_000;

impl Checkpointer {
    pub(super) fn start(path: &Path, synchronous: &'static str) -> Result<Checkpointer, DbError> {
        let conn = sqlite_open(path, synchronous)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let file = path.display().to_string();
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    std::thread::sleep(CHECKPOINT_AFTER);
                    // The commits meanwhile are in this checkpoint.
                    let _ = woken.try_recv();
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        // Busy (the writer is checkpointing itself) or I/O: the next commit
                        // brings another try, and the backstop holds meanwhile.
                        tracing::debug!(db = %file, error = %e, "checkpoint skipped");
                    }
                }
            })?;
        Ok(Checkpointer { wake })
    }

    pub(super) fn after_commit(&self) {
        // Full: one is pending already, and it will see this commit's pages.
        let _ = self.wake.try_send(());
    }
}

/// SQLite's read connections. A read runs on the calling thread from start to end, so no more
/// connections are ever in use than there are threads running tasks; idle ones are kept.
#[doc(hidden)]
pub struct SqliteReaders {
    pub(super) path: PathBuf,
    pub(super) synchronous: &'static str,
    pub(super) idle: Mutex<Vec<rusqlite::Connection>>,
    pub(super) closed: AtomicBool,
}

impl SqliteReaders {
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(DbError::Closed(self.path.display().to_string()));
        }
        let idle = self.idle.lock().expect("reader list").pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => sqlite_open(&self.path, self.synchronous)?,
        };
        let outcome = f(&mut conn);
        let mut idle = self.idle.lock().expect("reader list");
        if idle.len() < 8 {
            idle.push(conn);
        }
        outcome
    }
}

impl Db {
    /// Opens (creating if needed) the SQLite file `dir/{name}.db`. SQLite allows one writer at a
    /// time, so writes go through a single connection: commands on one service are serialised
    /// in-process instead of failing with `SQLITE_BUSY`. The directory and the files are its
    /// owner's alone ([`private_dir`], [`private_sqlite_file`]).
    pub async fn open_sqlite(
        dir: &Path,
        name: &str,
        durability: Durability,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DbError> {
        private_dir(dir)?;
        let path = dir.join(format!("{name}.db"));
        private_sqlite_file(&path)?;
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        let writer = sqlite_open(&path, synchronous)?;
        writer.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP)?;
        let checkpoint = Checkpointer::start(&path, synchronous)?;
        let readers = SqliteReaders {
            path,
            synchronous,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        let engine = SqliteEngine {
            writer: Arc::new(tokio::sync::Mutex::new(SqliteWriter {
                conn: writer,
                group: None,
                savepoint: false,
            })),
            queued: AtomicUsize::new(0),
            durability,
            checkpoint,
        };
        Ok(Self::build(
            name,
            Engine::Sqlite(engine),
            Reader(ReaderKind::Sqlite(readers)),
            clock,
        ))
    }
}

/// Opens one SQLite connection with Tanda's settings.
/// Creates `dir` (and its missing parents) readable by its owner only, or takes the group's and
/// others' access away from one that exists: it holds every service's data. A directory this
/// process may not change (not its owner's) is left as it is, with a warning.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        if let Err(e) = owner_only(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "the data directory stays readable by others");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// The database file `path` read- and writable by its owner only: created so when new (SQLite
/// then creates its `-wal` and `-shm` files with the same permissions), tightened when it, its
/// WAL or its shared memory file was left open to others.
pub(super) fn private_sqlite_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            // SQLite takes an empty file for a new database.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mut files = vec![path.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            files.push(PathBuf::from(companion));
        }
        for file in files {
            match owner_only(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "a database file stays readable by others");
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Takes the group's and others' permissions off `path`, if it has any.
#[cfg(unix)]
pub(super) fn owner_only(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
    }
    Ok(())
}

pub(super) fn sqlite_open(path: &Path, synchronous: &str) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
    ))?;
    // Two processes on one file (a test sabotaging a table) wait for each other.
    conn.busy_timeout(Duration::from_secs(10))?;
    // Every statement a service runs, prepared once per connection.
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// What only a SQLite database has.
pub(super) struct SqliteEngine {
    /// The one connection that writes, held by a unit of work from `begin` until it has
    /// committed or released its savepoint (see [`SqliteWriter`]).
    pub(super) writer: Arc<tokio::sync::Mutex<SqliteWriter>>,
    /// Units of work waiting for the writer.
    pub(super) queued: AtomicUsize,
    pub(super) durability: Durability,
    /// Woken after a commit.
    pub(super) checkpoint: Checkpointer,
}

impl SqliteEngine {
    /// Waits for the writer (counted as queued meanwhile) and starts a unit on it.
    pub(super) async fn start_unit(&self) -> Result<OwnedMutexGuard<SqliteWriter>, DbError> {
        let mut writer = {
            let _queued = Queued::enter(&self.queued);
            self.writer.clone().lock_owned().await
        };
        writer.start_unit()?;
        Ok(writer)
    }
}

impl Db {
    pub(super) fn sqlite(&self) -> &SqliteEngine {
        match &self.inner.engine {
            Engine::Sqlite(sqlite) => sqlite,
            Engine::Postgres(_) => panic!("only a unit of work on SQLite holds the writer"),
        }
    }

    /// Commits the open SQLite transaction for every unit in it, runs their after-commit hooks in
    /// order while still holding the writer, then answers them.
    pub(super) fn commit_group(
        &self,
        mut writer: OwnedMutexGuard<SqliteWriter>,
    ) -> Result<(), DbError> {
        let Some(group) = writer.group.take() else {
            return Ok(());
        };
        let commit = |conn: &mut rusqlite::Connection| conn.execute_batch("COMMIT");
        let sqlite = self.sqlite();
        let done = match sqlite.durability {
            // NORMAL: the commit appends to the WAL without waiting for the disk.
            Durability::Normal => commit(&mut writer.conn),
            // FULL waits for the disk: let the runtime move other tasks off this thread.
            Durability::Full => blocking(|| commit(&mut writer.conn)),
        };
        if let Err(e) = done {
            // Leaves the connection as the next unit expects it: outside a transaction.
            if !writer.conn.is_autocommit() {
                let _ = writer.conn.execute_batch("ROLLBACK");
            }
            drop(writer);
            group.done.send_replace(Some(Err(e.to_string().into())));
            return Err(e.into());
        }
        self.inner.commits.increment(group.finished);
        self.inner.transactions.increment(1);
        sqlite.checkpoint.after_commit();
        // Before the next unit can begin, so that in-memory state follows the commits in order.
        for f in group.hooks {
            f();
        }
        drop(writer);
        self.signal(group.wrote_outbox, group.wrote_timers);
        group.done.send_replace(Some(Ok(())));
        Ok(())
    }
}

/// Counts a task waiting for the SQLite writer for as long as it waits, even if it gives up.
pub(super) struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    pub(super) fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
