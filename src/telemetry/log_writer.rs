//! Log lines are written by a thread of their own, so a request never waits on stderr. Each
//! line is handed over through a bounded queue; when the queue is full (the writer cannot keep
//! up), INFO and lower lines are dropped and counted (`linker_log_lines_dropped_total`), while
//! WARN and ERROR lines wait for room: they are never lost. [`LogGuard`] flushes at shutdown.
//! The writer wakes on a short interval rather than per line: waking a thread for every line
//! costs a futex call and a context switch per request, which on two cores was most of what
//! logging cost.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Lines waiting at most before INFO lines are dropped.
const QUEUE_LINES: usize = 4 * 1024;
/// Longest the flush at shutdown may take.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// How often the writer looks for lines: the most a line waits before it is written.
const INTERVAL: Duration = Duration::from_millis(10);

enum Message {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// Lines dropped so far, for the metric (read at scrape time).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many INFO (or lower) lines were dropped because the writer could not keep up.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The `MakeWriter` of the subscriber: hands each line to the writer thread.
#[derive(Clone)]
pub struct NonBlocking {
    sender: SyncSender<Message>,
}

/// Flushes what is queued when dropped (at the end of `main`).
pub struct LogGuard {
    sender: SyncSender<Message>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, flushed) = mpsc::sync_channel(1);
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_WAIT);
        }
    }
}

/// Starts the writer thread over `out`.
pub fn spawn(out: impl Write + Send + 'static) -> (NonBlocking, LogGuard) {
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    let out = Arc::new(std::sync::Mutex::new(out));
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(&receiver, &out))
        .map_err(|error| eprintln!("mcp-asana-linker: cannot start the log writer: {error}"))
        .ok();
    (
        NonBlocking {
            sender: sender.clone(),
        },
        LogGuard { sender },
    )
}

/// Writes what has arrived every [`INTERVAL`], a batch per system call, until every sender is
/// gone.
fn write_lines(receiver: &Receiver<Message>, out: &std::sync::Mutex<impl Write>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let first = match receiver.try_recv() {
            Ok(message) => message,
            Err(mpsc::TryRecvError::Empty) => {
                std::thread::sleep(INTERVAL);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
        };
        let mut flushes = Vec::new();
        for message in std::iter::once(first).chain(receiver.try_iter()) {
            match message {
                Message::Line(line) => batch.extend_from_slice(&line),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() > 256 * 1024 {
                break;
            }
        }
        if let Ok(mut out) = out.lock() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
        batch.clear();
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// One log line being formatted; sent when dropped.
pub struct Line {
    sender: SyncSender<Message>,
    buffer: Vec<u8>,
    keep: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let line = Message::Line(std::mem::take(&mut self.buffer));
        match self.sender.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(line)) if self.keep => {
                let _ = self.sender.send(line);
            }
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for NonBlocking {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        self.line(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        self.line(*meta.level() <= Level::WARN)
    }
}

impl NonBlocking {
    fn line(&self, keep: bool) -> Line {
        Line {
            sender: self.sender.clone(),
            buffer: Vec::with_capacity(256),
            keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose first write says it has started, then waits for a go.
    struct Gate {
        sink: Arc<std::sync::Mutex<Vec<u8>>>,
        entered: Option<SyncSender<()>>,
        go: Option<Receiver<()>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let (Some(entered), Some(go)) = (self.entered.take(), self.go.take()) {
                let _ = entered.send(());
                let _ = go.recv();
            }
            self.sink.lock().expect("sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn under_overload_info_lines_are_dropped_and_counted_but_warnings_are_kept() {
        let sink = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (entered, writing) = mpsc::sync_channel(1);
        let (go, wait) = mpsc::sync_channel(1);
        let (writer, guard) = spawn(Gate {
            sink: Arc::clone(&sink),
            entered: Some(entered),
            go: Some(wait),
        });
        let before = dropped();
        writer.line(false).write_all(b"first\n").expect("write");
        writing
            .recv()
            .expect("the writer is busy with the first line");

        for i in 0..QUEUE_LINES + 100 {
            writer
                .line(false)
                .write_all(format!("info {i}\n").as_bytes())
                .expect("write");
        }
        let warned = std::thread::spawn({
            let writer = writer.clone();
            move || writer.line(true).write_all(b"warning\n").expect("write")
        });
        go.send(()).expect("go");
        warned.join().expect("the warning waited for room");
        drop(guard);

        let written = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(dropped() - before, 100);
        assert!(written.starts_with("first\n"));
        assert!(written.contains("warning\n"), "the warning was kept");
        assert_eq!(written.lines().count(), 1 + QUEUE_LINES + 1);
    }
}
