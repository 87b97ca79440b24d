//! The audit log (DESIGN §7): one JSON line per finished request.
//!
//! A shard formats each record into its own batch buffer (no syscall, no lock; the buffer is
//! reused) and hands full batches — and whatever it holds every 10 ms — to one writer thread
//! over a bounded crossbeam channel. When the writer falls behind and the channel is full, the
//! batch is dropped and its lines are counted (`keyway_audit_dropped_total`): the data plane
//! never waits for the disk, and a loss is never silent. SIGUSR1 makes the writer reopen the
//! file (for logrotate).

pub use keyway_core::audit as record;

pub use keyway_core::audit::{write_line, Record};

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

/// Batches waiting for the writer, at most (with `BATCH_BYTES`, ~16 MiB).
pub const QUEUE_BATCHES: usize = 256;
/// A shard hands its buffer over once it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Lines formatted by one shard, on their way to the file.
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

/// One shard's side: its batch buffer and its sender. Single-threaded (`Cell`/`RefCell`).
pub struct ShardAudit {
    tx: Sender<Batch>,
    buf: RefCell<Vec<u8>>,
    lines: Cell<u64>,
}

impl ShardAudit {
    pub fn new(tx: Sender<Batch>) -> ShardAudit {
        ShardAudit {
            tx,
            buf: RefCell::new(Vec::with_capacity(BATCH_BYTES)),
            lines: Cell::new(0),
        }
    }

    /// Appends one record; returns how many lines were dropped by a hand-over it triggered.
    pub fn record(&self, r: &Record<'_>) -> u64 {
        let full = {
            let mut buf = self.buf.borrow_mut();
            write_line(r, &mut buf);
            buf.len() >= BATCH_BYTES
        };
        self.lines.set(self.lines.get() + 1);
        if full {
            self.flush()
        } else {
            0
        }
    }

    /// Hands the buffered lines to the writer; returns how many were dropped (queue full or
    /// writer gone).
    pub fn flush(&self) -> u64 {
        let lines = self.lines.replace(0);
        if lines == 0 {
            return 0;
        }
        let bytes = std::mem::replace(&mut *self.buf.borrow_mut(), Vec::with_capacity(BATCH_BYTES));
        match self.tx.try_send(Batch { bytes, lines }) {
            Ok(()) => 0,
            Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) => {
                // Keep the allocation for the next batch.
                let mut bytes = b.bytes;
                bytes.clear();
                *self.buf.borrow_mut() = bytes;
                lines
            }
        }
    }
}

/// The writer thread and the handles to steer it.
pub struct Writer {
    reopen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

/// Opens (creates, appends to) the audit file, then starts the writer thread. Returns the
/// sender the shards share.
/// `failed` counts lines that could not be written.
pub fn start(path: &Path, failed: Arc<AtomicU64>) -> io::Result<(Writer, Sender<Batch>)> {
    let file = open(path)?;
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
    let reopen = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let state = WriterLoop {
        path: path.to_path_buf(),
        file,
        rx,
        reopen: reopen.clone(),
        stop: stop.clone(),
        failed: failed.clone(),
        last_error_log: None,
    };
    let join = std::thread::Builder::new()
        .name("keyway-audit".into())
        .spawn(move || state.run())?;
    Ok((
        Writer {
            reopen,
            stop,
            join: Some(join),
        },
        tx,
    ))
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Writer {
    /// Reopen the file at the next batch or within 100 ms (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Writes what is queued, then stops the thread. Call after every shard has flushed.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

struct WriterLoop {
    path: PathBuf,
    file: File,
    rx: Receiver<Batch>,
    reopen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    last_error_log: Option<Instant>,
}

impl WriterLoop {
    fn run(mut self) {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(batch) => self.write(batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.reopen.swap(false, Ordering::AcqRel) {
                match open(&self.path) {
                    Ok(f) => {
                        self.file = f;
                        tracing::info!(path = %self.path.display(), "audit log reopened");
                    }
                    Err(e) => tracing::error!(
                        path = %self.path.display(),
                        error = %e,
                        "cannot reopen the audit log; still writing to the old file — check the directory and permissions, then send SIGUSR1 again"
                    ),
                }
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
        }
        while let Ok(batch) = self.rx.try_recv() {
            self.write(batch);
        }
        let _ = self.file.flush();
    }

    fn write(&mut self, batch: Batch) {
        if let Err(e) = self.file.write_all(&batch.bytes) {
            self.failed.fetch_add(batch.lines, Ordering::Relaxed);
            // One line per 10 s at most: a full disk must not flood the log.
            if self
                .last_error_log
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
            {
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "cannot write the audit log; lines are dropped and counted in keyway_audit_dropped_total — free disk space or fix permissions"
                );
                self.last_error_log = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u16) -> Record<'static> {
        Record {
            ts_ms: 1_795_825_193_123,
            method: b"GET",
            path: b"/v1/x",
            status: i,
            outcome: "proxied",
            ..Record::default()
        }
    }

    #[test]
    fn batches_reach_the_file_in_order_and_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (writer, tx) = start(&path, Default::default()).unwrap();
        let shard = ShardAudit::new(tx);
        for i in 0..3 {
            assert_eq!(shard.record(&rec(200 + i)), 0);
        }
        assert_eq!(shard.flush(), 0);
        // logrotate: move the file away, then ask for a reopen.
        let rotated = dir.path().join("audit.jsonl.1");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path).unwrap().lines().count() < 3
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&path, &rotated).unwrap();
        writer.reopen();
        std::thread::sleep(Duration::from_millis(300));
        shard.record(&rec(404));
        shard.flush();
        drop(shard);
        writer.finish();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let statuses: Vec<u64> = old
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(statuses, [200, 201, 202]);
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("\"status\":404"));
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shard = ShardAudit::new(tx);
        shard.record(&rec(200));
        assert_eq!(shard.flush(), 0);
        shard.record(&rec(201));
        shard.record(&rec(202));
        assert_eq!(shard.flush(), 2, "the queue holds one batch");
        assert_eq!(rx.try_recv().unwrap().lines, 1);
        // The buffer was kept for the next batch, empty.
        shard.record(&rec(203));
        assert_eq!(shard.flush(), 0);
        let b = rx.try_recv().unwrap();
        assert_eq!(b.lines, 1);
        assert!(std::str::from_utf8(&b.bytes).unwrap().contains("203"));
    }

    #[test]
    fn a_big_batch_is_handed_over_by_itself() {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        let shard = ShardAudit::new(tx);
        let mut n = 0;
        while rx.is_empty() {
            assert_eq!(shard.record(&rec(200)), 0);
            n += 1;
            assert!(n < 10_000);
        }
        let b = rx.try_recv().unwrap();
        assert_eq!(b.lines, n);
        assert!(b.bytes.len() >= BATCH_BYTES);
    }

    #[test]
    fn an_unwritable_path_is_refused_at_start() {
        let Err(err) = start(
            Path::new("/nonexistent-dir/audit.jsonl"),
            Default::default(),
        ) else {
            panic!("opened a file in a directory that does not exist")
        };
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
