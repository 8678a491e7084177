//! The durable record of an experiment: SQLite in WAL mode, written by one thread in grouped
//! transactions, plus the per-trial files (`params.json`, `result.json`, `progress.csv`).
//!
//! A write is acknowledged (its `then` action runs) only after the transaction holding it commits,
//! which is what makes `report()` durable.

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};

/// Schema version in `PRAGMA user_version`; a database with another version is refused.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  seq INTEGER PRIMARY KEY,
  trial_id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  config TEXT NOT NULL,
  status TEXT NOT NULL,
  resources TEXT NOT NULL,
  num_failures INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  traceback TEXT,
  stop_reason TEXT,
  logdir TEXT NOT NULL,
  created_at REAL NOT NULL,
  started_at REAL,
  ended_at REAL
);
CREATE TABLE IF NOT EXISTS results (
  id INTEGER PRIMARY KEY,
  trial_seq INTEGER NOT NULL,
  training_iteration INTEGER NOT NULL,
  timestamp REAL NOT NULL,
  metrics TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_trial ON results (trial_seq, training_iteration);
CREATE TABLE IF NOT EXISTS checkpoints (
  id INTEGER PRIMARY KEY,
  trial_seq INTEGER NOT NULL,
  training_iteration INTEGER NOT NULL,
  path TEXT NOT NULL,
  metrics TEXT NOT NULL,
  created_at REAL NOT NULL,
  deleted_at REAL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_trial ON checkpoints (trial_seq);
CREATE TABLE IF NOT EXISTS log (
  seq INTEGER PRIMARY KEY,
  trial_seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY,
  timestamp REAL NOT NULL,
  trial_seq INTEGER,
  kind TEXT NOT NULL,
  detail TEXT
);
";

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is not an experiment database of this version.
    #[error("{path}: {message}")]
    Incompatible {
        /// The database file.
        path: PathBuf,
        /// What was found.
        message: String,
    },
    /// The writer thread is gone (after an earlier failure).
    #[error("the experiment store stopped after an earlier error")]
    Closed,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Opens (creating if asked) and checks an experiment database.
pub fn open(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let sq = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
    let flags = if create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(sq)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(sq)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            StoreError::Incompatible {
                path: path.to_path_buf(),
                message: "not an SQLite database (is this an experiment folder?)".into(),
            }
        }
        e => sq(e),
    })?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sq)?;
    if version == 0 && tables == 0 {
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sq)?;
        conn.execute_batch(SCHEMA).map_err(sq)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sq)?;
    } else if version != SCHEMA_VERSION {
        return Err(StoreError::Incompatible {
            path: path.to_path_buf(),
            message: format!(
                "experiment database schema version {version}, this hyperfleet reads version {SCHEMA_VERSION}"
            ),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(sq)?;
    // Databases written before this index existed get it now (where the file is writable).
    let _ = conn.execute_batch("CREATE INDEX IF NOT EXISTS checkpoints_by_trial ON checkpoints (trial_seq)");
    Ok(conn)
}

/// One trial's open `result.json`, `progress.csv` and the CSV header.
struct OpenFiles {
    json: BufWriter<File>,
    csv: BufWriter<File>,
    header: Vec<String>,
}

/// Per-trial text logs kept open by the writer thread.
#[derive(Default)]
pub struct TrialFiles {
    open: BTreeMap<u64, OpenFiles>,
}

/// A stored checkpoint: iteration, path relative to the experiment folder, metrics at that point.
pub type CheckpointRow = (u64, String, Map<String, Value>);

impl TrialFiles {
    /// Appends one result to `result.json` and `progress.csv` of the trial in `dir`.
    pub fn append_result(&mut self, seq: u64, dir: &Path, metrics: &Map<String, Value>) {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.open.entry(seq) {
            let open = |name: &str| OpenOptions::new().create(true).append(true).open(dir.join(name));
            let (Ok(j), Ok(c)) = (open("result.json"), open("progress.csv")) else { return };
            let fresh = c.metadata().map(|m| m.len() == 0).unwrap_or(true);
            let mut header: Vec<String> = metrics.keys().filter(|k| !metrics[*k].is_object()).cloned().collect();
            let mut c = BufWriter::new(c);
            if fresh {
                let _ = writeln!(c, "{}", header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(","));
            } else if let Ok(s) = std::fs::read_to_string(dir.join("progress.csv")) {
                if let Some(first) = s.lines().next() {
                    header = first.split(',').map(|h| h.trim_matches('"').to_string()).collect();
                }
            }
            slot.insert(OpenFiles { json: BufWriter::new(j), csv: c, header });
        }
        let Some(OpenFiles { json: j, csv: c, header }) = self.open.get_mut(&seq) else { return };
        let _ = serde_json::to_writer(&mut *j, metrics);
        let _ = j.write_all(b"\n");
        let row: Vec<String> = header
            .iter()
            .map(|h| match metrics.get(h) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => csv_field(s),
                Some(v) => csv_field(&v.to_string()),
            })
            .collect();
        let _ = writeln!(c, "{}", row.join(","));
    }

    /// Flushes and closes a trial's files.
    pub fn close(&mut self, seq: u64) {
        if let Some(mut f) = self.open.remove(&seq) {
            let _ = f.json.flush();
            let _ = f.csv.flush();
        }
    }

    fn flush_all(&mut self) {
        for f in self.open.values_mut() {
            let _ = f.json.flush();
            let _ = f.csv.flush();
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

type Write_ = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;
type Then = Box<dyn FnOnce(&mut TrialFiles) + Send>;
/// Runs as soon as its write commits (a report's acknowledgement).
pub type Ack = Box<dyn FnOnce() + Send>;

enum Op {
    Write(Write_, Option<Ack>, Option<Then>),
    /// File work after a commit made elsewhere; always on the writer thread, in order.
    Files(Then),
    /// Several file ops sent with one message (one wake-up of the writer thread).
    Many(Vec<Op>),
    Barrier(Sender<()>),
}

/// What the writer thread and inline writes share: the connection and the first error (after
/// which nothing more is written). The trial files belong to the writer thread alone.
struct Shared {
    conn: Connection,
    failed: Option<rusqlite::Error>,
}

/// Handle to the writer thread. Cloneable; writes are applied in the order they are sent.
///
/// With `inline` on, a write sent while nothing is queued and the writer is idle is committed
/// at once on the sending thread (its own transaction), which saves the wake-up of the writer
/// thread: that hop was most of the cost of a durable `report()`. Writes that find the writer
/// busy queue behind it and are grouped into its next transaction, as before.
#[derive(Clone)]
pub struct Store {
    tx: Sender<Op>,
    shared: std::sync::Arc<std::sync::Mutex<Shared>>,
    /// Writes sent to the writer thread and not yet applied.
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    inline: bool,
    /// Waited-on writes held until `flush`, so that the reports of one pass of the controller's
    /// loop share one transaction.
    deferred: std::sync::Arc<std::sync::Mutex<Vec<Op>>>,
    path: PathBuf,
    on_error: std::sync::Arc<dyn Fn(String) + Send + Sync>,
}

/// The writer thread's join handle; joining returns the first error it met, if any.
pub struct StoreThread(std::thread::JoinHandle<Result<(), StoreError>>);

impl StoreThread {
    /// Waits for the writer to drain and stop (after every `Store` handle is dropped).
    pub fn join(self) -> Result<(), StoreError> {
        self.0.join().unwrap_or(Err(StoreError::Closed))
    }
}

impl Store {
    /// Starts the writer thread on an open connection; `on_error` is told about a failed commit once.
    pub fn start(
        conn: Connection,
        path: PathBuf,
        on_error: Box<dyn Fn(String) + Send + Sync>,
        inline: bool,
    ) -> (Store, StoreThread) {
        let (tx, rx) = channel();
        // Checkpoints (copying the WAL into the database, with an fsync) run on a thread of their
        // own, so a commit — and the report() waiting on it — never stalls behind one.
        let _ = conn.pragma_update(None, "wal_autocheckpoint", 0);
        let shared = std::sync::Arc::new(std::sync::Mutex::new(Shared { conn, failed: None }));
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let on_error: std::sync::Arc<dyn Fn(String) + Send + Sync> = std::sync::Arc::from(on_error);
        let store = Store {
            tx,
            shared: shared.clone(),
            queued: queued.clone(),
            inline,
            deferred: Default::default(),
            path: path.clone(),
            on_error: on_error.clone(),
        };
        let h = std::thread::Builder::new()
            .name("hyperfleet-store".into())
            .spawn(move || writer(shared, queued, path, rx, on_error))
            .expect("spawn store thread");
        (store, StoreThread(h))
    }

    /// Queues a write; `then` runs after it commits.
    pub fn write(&self, w: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static, then: Option<Then>) {
        self.flush();
        self.queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.tx.send(Op::Write(Box::new(w), None, then));
    }

    /// A write someone is waiting on (a report's result). When the store is `inline` it is held
    /// until `flush` (the end of the controller's pass over the events at hand), then committed
    /// with the others held on this thread if the writer is idle and nothing is queued;
    /// otherwise it is queued like any write.
    pub fn write_waited(
        &self,
        w: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
        ack: Option<Ack>,
        then: Option<Then>,
    ) {
        let op = Op::Write(Box::new(w), ack, then);
        if self.inline {
            self.deferred.lock().unwrap_or_else(|e| e.into_inner()).push(op);
        } else {
            self.flush();
            self.queued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = self.tx.send(op);
        }
    }

    /// Commits the held writes (see `write_waited`), in order, before anything sent after them.
    pub fn flush(&self) {
        use std::sync::atomic::Ordering;
        let mut batch = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        if self.queued.load(Ordering::SeqCst) == 0 {
            if let Ok(mut g) = self.shared.try_lock() {
                // Under the lock the writer is idle, and nothing is queued: committing here keeps the order.
                if self.queued.load(Ordering::SeqCst) == 0 {
                    // Committed and acknowledged here; the file work goes to the writer thread.
                    let rest = apply(&mut g, &mut batch, &self.path, &*self.on_error);
                    if !rest.is_empty() {
                        let _ = self.tx.send(Op::Many(rest));
                    }
                    return;
                }
            }
        }
        for op in batch {
            self.queued.fetch_add(1, Ordering::SeqCst);
            let _ = self.tx.send(op);
        }
    }

    /// Blocks until everything sent before is committed.
    pub fn barrier(&self) -> Result<(), StoreError> {
        self.flush();
        let (tx, rx) = channel();
        self.tx.send(Op::Barrier(tx)).map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?;
        match self.shared.lock() {
            Ok(g) if g.failed.is_some() => Err(StoreError::Closed),
            _ => Ok(()),
        }
    }

    /// Sets an experiment-level key.
    pub fn set_meta(&self, key: &str, value: String) {
        let key = key.to_string();
        self.write(
            move |c| {
                c.execute(
                    "INSERT INTO experiment(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                    params![key, value],
                )
                .map(|_| ())
            },
            None,
        );
    }

    /// Appends an event to the log.
    pub fn event(&self, trial: Option<u64>, kind: &'static str, detail: String) {
        let ts = now();
        self.write(
            move |c| {
                c.prepare_cached("INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![ts, trial.map(|t| t as i64), kind, detail])
                    .map(|_| ())
            },
            None,
        );
    }
}

/// Commits the batch's writes in one transaction and runs their acknowledgements; returns, in
/// order, what is left for the writer thread: each write's file work and any other ops. After a
/// failure nothing more is written or acknowledged, and `on_error` has been told once.
fn apply(sh: &mut Shared, batch: &mut Vec<Op>, path: &Path, on_error: &(dyn Fn(String) + Send + Sync)) -> Vec<Op> {
    if sh.failed.is_none() && batch.iter().any(|op| matches!(op, Op::Write(..))) {
        let res = (|| -> rusqlite::Result<()> {
            let tx = sh.conn.transaction()?;
            for op in batch.iter_mut() {
                if let Op::Write(w, _, _) = op {
                    let w = std::mem::replace(w, Box::new(|_| Ok(())));
                    w(&tx)?;
                }
            }
            crate::failpoint("store_before_commit");
            tx.commit()?;
            crate::failpoint("store_after_commit");
            Ok(())
        })();
        if let Err(e) = res {
            on_error(format!("{}: could not record to the experiment database: {e}", path.display()));
            sh.failed = Some(e);
        }
    }
    let ok = sh.failed.is_none();
    let mut rest = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Write(_, ack, then) => {
                if ok {
                    if let Some(a) = ack {
                        a();
                    }
                    if let Some(t) = then {
                        rest.push(Op::Files(t));
                    }
                }
            }
            other => rest.push(other),
        }
    }
    rest
}

fn writer(
    shared: std::sync::Arc<std::sync::Mutex<Shared>>,
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    path: PathBuf,
    rx: Receiver<Op>,
    on_error: std::sync::Arc<dyn Fn(String) + Send + Sync>,
) -> Result<(), StoreError> {
    let (stop_ckpt, ckpt_thread) = checkpointer(&path);
    let mut files = TrialFiles::default();
    let mut batch: Vec<Op> = Vec::with_capacity(256);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let writes = batch.iter().filter(|op| matches!(op, Op::Write(..))).count();
        let rest = {
            let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
            let rest = apply(&mut g, &mut batch, &path, &*on_error);
            queued.fetch_sub(writes, std::sync::atomic::Ordering::SeqCst);
            rest
        };
        let failed = shared.lock().map(|g| g.failed.is_some()).unwrap_or(true);
        let mut todo: std::collections::VecDeque<Op> = rest.into();
        while let Some(op) = todo.pop_front() {
            match op {
                Op::Files(t) if !failed => t(&mut files),
                Op::Many(v) => {
                    for (i, o) in v.into_iter().enumerate() {
                        todo.insert(i, o);
                    }
                }
                Op::Barrier(done) => {
                    files.flush_all();
                    let _ = done.send(());
                }
                _ => {}
            }
        }
    }
    drop(stop_ckpt);
    if let Some(t) = ckpt_thread {
        let _ = t.join();
    }
    files.flush_all();
    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
    match g.failed.take() {
        Some(e) => Err(StoreError::Sqlite { path, source: e }),
        None => {
            let _ = g.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
            Ok(())
        }
    }
}

/// Starts the thread that checkpoints the WAL every quarter second (passively: it never waits
/// for the writer); it stops when the returned sender is dropped.
fn checkpointer(path: &Path) -> (Sender<()>, Option<std::thread::JoinHandle<()>>) {
    let (tx, rx) = channel::<()>();
    let path = path.to_path_buf();
    let h = std::thread::Builder::new().name("hyperfleet-checkpoint".into()).spawn(move || {
        let Ok(c) =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        else {
            return;
        };
        let _ = c.busy_timeout(std::time::Duration::from_millis(100));
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(std::time::Duration::from_millis(250))
        {
            let _ = c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
        }
    });
    (tx, h.ok())
}

/// A trial as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRow {
    /// Creation index.
    pub seq: u64,
    /// Text id (`a1b2c_00003`).
    pub trial_id: String,
    /// Display name.
    pub name: String,
    /// Resolved config.
    pub config: Map<String, Value>,
    /// PENDING, RUNNING, PAUSED, TERMINATED or ERROR.
    pub status: String,
    /// Failures so far.
    pub num_failures: u32,
    /// One-line error.
    pub error: Option<String>,
    /// Why it stopped, when stopped early.
    pub stop_reason: Option<String>,
    /// Folder relative to the experiment folder.
    pub logdir: String,
    /// Its last result.
    pub last_result: Option<Map<String, Value>>,
    /// Its latest live checkpoint: (iteration, path relative to the experiment folder).
    pub latest_checkpoint: Option<(u64, String)>,
}

/// Reads an experiment key.
pub fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM experiment WHERE key = ?1", [key], |r| r.get(0)).optional()
}

/// The metrics stored with one checkpoint of a trial.
pub fn checkpoint_metrics(conn: &Connection, seq: u64, path: &str) -> rusqlite::Result<Option<Map<String, Value>>> {
    let m: Option<String> = conn
        .query_row(
            "SELECT metrics FROM checkpoints WHERE trial_seq = ?1 AND path = ?2 ORDER BY id DESC LIMIT 1",
            params![seq as i64, path],
            |r| r.get(0),
        )
        .optional()?;
    Ok(m.and_then(|m| serde_json::from_str(&m).ok()))
}

/// Paths (relative to the experiment folder) of every checkpoint not marked deleted.
pub fn live_checkpoint_paths(conn: &Connection) -> rusqlite::Result<std::collections::BTreeSet<String>> {
    let mut st = conn.prepare("SELECT path FROM checkpoints WHERE deleted_at IS NULL")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Records `details` as events of `kind` for trial `seq`, inside the caller's transaction.
pub fn insert_events(c: &Connection, seq: u64, kind: &str, details: &[String]) -> rusqlite::Result<()> {
    for d in details {
        c.prepare_cached("INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![now(), seq as i64, kind, d])?;
    }
    Ok(())
}

/// Appends one entry of the replay log: what the searcher and scheduler were told, in order.
pub fn append_log(c: &Connection, trial: u64, kind: &str, detail: &str) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO log(trial_seq, kind, detail) VALUES (?1, ?2, ?3)")?
        .execute(params![trial as i64, kind, detail])
        .map(|_| ())
}

/// One entry of the replay log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRow {
    /// The trial.
    pub trial: u64,
    /// `add`, `result`, `exploit` or `end`.
    pub kind: String,
    /// JSON: what the algorithms saw.
    pub detail: Value,
}

/// Streams the replay log in order: `f(trial, kind, detail JSON)` for each entry, without
/// holding the log in memory (a million-result experiment replays in one pass).
pub fn for_each_log(conn: &Connection, mut f: impl FnMut(u64, &str, &str)) -> rusqlite::Result<()> {
    let mut st = conn.prepare("SELECT trial_seq, kind, detail FROM log ORDER BY seq")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let trial = r.get::<_, i64>(0)? as u64;
        let kind = r
            .get_ref(1)?
            .as_str()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e)))?;
        let detail = r
            .get_ref(2)?
            .as_str()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e)))?;
        f(trial, kind, detail);
    }
    Ok(())
}

/// Every version of each trial's PBT policy history (its donors' lines, then its own, as in its
/// `pbt_policy_<trial_id>.txt`): `[0]` is empty, `[k]` the history after its k-th exploit.
/// Rebuilt from the stored `exploit` events in order; each names the version of its donor's
/// history it continued (`donor_version`; the donor's latest when absent).
pub fn policy_histories(conn: &Connection) -> rusqlite::Result<std::collections::BTreeMap<u64, Vec<String>>> {
    let mut st = conn.prepare("SELECT trial_seq, detail FROM events WHERE kind = 'exploit' ORDER BY id")?;
    let ids: std::collections::BTreeMap<String, u64> = conn
        .prepare("SELECT trial_id, seq FROM trials")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (seq, line) = row?;
        let v = serde_json::from_str::<Value>(&line).unwrap_or(Value::Null);
        let donor = v.get("donor").and_then(Value::as_str).and_then(|d| ids.get(d));
        let versions = donor.and_then(|d| out.get(d));
        let base = match (versions, v.get("donor_version").and_then(Value::as_u64)) {
            (Some(h), Some(k)) => h.get(k as usize).or(h.last()).cloned(),
            (Some(h), None) => h.last().cloned(),
            (None, _) => None,
        };
        let mut history = base.unwrap_or_default();
        history.push_str(&line);
        history.push('\n');
        out.entry(seq).or_insert_with(|| vec![String::new()]).push(history);
    }
    Ok(out)
}

/// Reads every trial with its last result and latest checkpoint, in creation order.
pub fn load_trials(conn: &Connection) -> rusqlite::Result<Vec<TrialRow>> {
    let mut st = conn.prepare(
        "SELECT t.seq, t.trial_id, t.name, t.config, t.status, t.num_failures, t.error, t.stop_reason, t.logdir,
           (SELECT metrics FROM results WHERE id = (SELECT max(r.id) FROM results r WHERE r.trial_seq = t.seq)),
           (SELECT training_iteration FROM checkpoints c WHERE c.trial_seq = t.seq AND c.deleted_at IS NULL ORDER BY c.id DESC LIMIT 1),
           (SELECT path FROM checkpoints c WHERE c.trial_seq = t.seq AND c.deleted_at IS NULL ORDER BY c.id DESC LIMIT 1)
         FROM trials t ORDER BY t.seq",
    )?;
    let rows = st.query_map([], |r| {
        let obj = |s: Option<String>| s.and_then(|s| serde_json::from_str::<Map<String, Value>>(&s).ok());
        let ck_iter: Option<i64> = r.get(10)?;
        let ck_path: Option<String> = r.get(11)?;
        Ok(TrialRow {
            seq: r.get::<_, i64>(0)? as u64,
            trial_id: r.get(1)?,
            name: r.get(2)?,
            config: obj(r.get(3)?).unwrap_or_default(),
            status: r.get(4)?,
            num_failures: r.get::<_, i64>(5)? as u32,
            error: r.get(6)?,
            stop_reason: r.get(7)?,
            logdir: r.get(8)?,
            last_result: obj(r.get(9)?),
            latest_checkpoint: ck_iter.zip(ck_path).map(|(i, p)| (i as u64, p)),
        })
    })?;
    rows.collect()
}

/// Live checkpoints of one trial, oldest first: (iteration, relative path, metrics).
pub fn load_checkpoints(conn: &Connection, seq: u64) -> rusqlite::Result<Vec<CheckpointRow>> {
    let mut st = conn.prepare(
        "SELECT training_iteration, path, metrics FROM checkpoints WHERE trial_seq = ?1 AND deleted_at IS NULL ORDER BY id",
    )?;
    let rows = st.query_map([seq as i64], |r| {
        let m: String = r.get(2)?;
        Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, serde_json::from_str(&m).unwrap_or_default()))
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_commit_before_acknowledging_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("experiment.db");
        let conn = open(&db, true).unwrap();
        let (store, th) = Store::start(conn, db.clone(), Box::new(|e| panic!("{e}")), true);
        store.set_meta("name", "t".into());
        store.write(
            |c| {
                c.execute(
                    "INSERT INTO trials(seq, trial_id, name, config, status, resources, logdir, created_at) VALUES (0, 'x_00000', 'n', '{\"a\":1}', 'RUNNING', '{}', 'trials/x_00000', 0)",
                    [],
                )
                .map(|_| ())
            },
            None,
        );
        let (ack_tx, ack_rx) = channel();
        let tdir = dir.path().to_path_buf();
        store.write(
            |c| {
                c.execute(
                    "INSERT INTO results(trial_seq, training_iteration, timestamp, metrics) VALUES (0, 1, 0, '{\"loss\":0.5,\"training_iteration\":1}')",
                    [],
                )
                .map(|_| ())
            },
            Some(Box::new(move |files: &mut TrialFiles| {
                let mut m = Map::new();
                m.insert("loss".into(), 0.5.into());
                files.append_result(0, &tdir, &m);
                ack_tx.send(()).unwrap();
            })),
        );
        ack_rx.recv().unwrap();
        // Acknowledged means committed: a second connection sees it.
        let reader = open(&db, false).unwrap();
        let trials = load_trials(&reader).unwrap();
        assert_eq!(trials.len(), 1);
        assert_eq!(trials[0].last_result.as_ref().unwrap()["loss"], 0.5);
        assert_eq!(meta(&reader, "name").unwrap().as_deref(), Some("t"));
        store.barrier().unwrap();
        drop(store);
        th.join().unwrap();
        let csv = std::fs::read_to_string(dir.path().join("progress.csv")).unwrap();
        assert_eq!(csv, "loss\n0.5\n");
    }

    #[test]
    fn policy_histories_follow_the_lineage() {
        // c exploits a; b exploits c (c's first version); c exploits a again; then d clones b, and e
        // clones c's version 1 (its copy started before c's second exploit finished).
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("experiment.db"), true).unwrap();
        for (seq, id) in [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")] {
            conn.execute(
                "INSERT INTO trials(seq, trial_id, name, config, status, resources, logdir, created_at) VALUES (?1, ?2, ?2, '{}', 'RUNNING', '{}', ?2, 0)",
                params![seq, id],
            )
            .unwrap();
        }
        let line = |trial: &str, donor: &str, v: u64| {
            format!(r#"{{"trial_id":"{trial}","donor":"{donor}","donor_version":{v}}}"#)
        };
        let steps = [
            (2, line("c", "a", 0)),
            (1, line("b", "c", 1)),
            (2, line("c", "a", 0)),
            (3, line("d", "b", 1)),
            (4, line("e", "c", 1)),
        ];
        for (seq, l) in &steps {
            conn.execute(
                "INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (0, ?1, 'exploit', ?2)",
                params![seq, l],
            )
            .unwrap();
        }
        conn.execute("INSERT INTO events(timestamp, trial_seq, kind, detail) VALUES (0, 0, 'status', 'RUNNING')", [])
            .unwrap();
        let h = policy_histories(&conn).unwrap();
        let text = |ls: &[&String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();
        assert_eq!(h.get(&0), None);
        assert_eq!(h[&2], vec![String::new(), text(&[&steps[0].1]), text(&[&steps[2].1])]);
        assert_eq!(h[&1].last().unwrap(), &text(&[&steps[0].1, &steps[1].1]));
        assert_eq!(h[&3].last().unwrap(), &text(&[&steps[0].1, &steps[1].1, &steps[3].1]));
        // e continued c's first version, not its latest.
        assert_eq!(h[&4].last().unwrap(), &text(&[&steps[0].1, &steps[4].1]));
    }

    #[test]
    fn refuses_foreign_files_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database, it is a text file with enough bytes to matter....").unwrap();
        let e = open(&junk, false).unwrap_err();
        assert!(e.to_string().contains("not an SQLite database"), "{e}");
        let db = dir.path().join("old.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE x(a); PRAGMA user_version = 99;").unwrap();
        drop(c);
        let e = open(&db, false).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }
}
