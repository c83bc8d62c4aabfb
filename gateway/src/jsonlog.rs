//! JSON log lines (the access log, the audit log) with stable field names, written by a
//! dedicated thread per target so that a slow sink never stalls the proxy. Workers append
//! finished lines to one pending buffer per target; the writer swaps it out every batch
//! interval and writes it in one call. A line costs the worker a copy under an uncontended
//! lock: no allocation, and no block freed on another thread (which a queue of owned lines
//! costs, and which mimalloc makes each owning thread collect later). The pending buffer is
//! bounded; lines beyond it are dropped and counted. Logs sharing a target share its buffer,
//! so their lines never interleave.

use parking_lot::{Condvar, Mutex};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, OnceLock};

/// Most bytes waiting for the writer; beyond this, lines are dropped. At 40,000 requests a
/// second this is about two seconds of access log. With the batch being written, a target
/// holds at most twice this.
const MAX_PENDING_BYTES: usize = 32 << 20;

/// A writer that had to absorb a burst keeps no more than this between batches.
const KEEP_CAPACITY: usize = 1 << 20;

/// A writer thread for one target (`stdout`, `stderr` or a file path, appended to).
pub struct Sink {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when the buffer goes from empty to not, or a flush is asked for.
    wake: Condvar,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Flushes waiting for everything appended before them to be written.
    acks: Vec<std::sync::mpsc::Sender<()>>,
}

static SINKS: LazyLock<Mutex<HashMap<String, Arc<Sink>>>> = LazyLock::new(Default::default);

/// Where access log lines go (unset: not logged).
pub static ACCESS: OnceLock<Arc<Sink>> = OnceLock::new();
/// Where audit lines go.
pub static AUDIT: OnceLock<Arc<Sink>> = OnceLock::new();

impl Sink {
    /// The sink for `target`, starting its writer on first use.
    pub fn for_target(target: &str) -> std::io::Result<Arc<Sink>> {
        let mut sinks = SINKS.lock();
        if let Some(s) = sinks.get(target) {
            return Ok(s.clone());
        }
        let out: Box<dyn Write + Send> = match target {
            "stdout" => Box::new(std::io::stdout()),
            "stderr" => Box::new(std::io::stderr()),
            path => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("warden-log".into())
            .spawn(move || write_loop(&writer, out))?;
        let sink = Arc::new(Sink { shared });
        sinks.insert(target.to_string(), sink.clone());
        Ok(sink)
    }

    /// Appends one whole line, or drops it (and counts the drop) when the writer is behind.
    fn send(&self, line: &[u8]) {
        let mut p = self.shared.pending.lock();
        if p.bytes.len() + line.len() > MAX_PENDING_BYTES {
            drop(p);
            crate::metrics::ACCESS_LOG_DROPPED_TOTAL.inc();
            return;
        }
        let was_empty = p.bytes.is_empty();
        p.bytes.extend_from_slice(line);
        drop(p);
        // While the writer rests between batches nobody waits, and this costs no syscall.
        if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// Waits (at most `limit`) until every line appended before the call is written.
    fn flush(&self, limit: std::time::Duration) {
        let (ack, done) = std::sync::mpsc::channel();
        self.shared.pending.lock().acks.push(ack);
        self.shared.wake.notify_one();
        let _ = done.recv_timeout(limit);
    }
}

/// How long the writer rests after a batch. While it rests, workers only append: under load
/// that is one wake-up and one write per interval instead of one per request.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn write_loop(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let mut batch = Vec::new();
    loop {
        let acks = {
            let mut p = shared.pending.lock();
            while p.bytes.is_empty() && p.acks.is_empty() {
                shared.wake.wait(&mut p);
            }
            // The emptied buffer goes back with its capacity, so appends do not reallocate.
            std::mem::swap(&mut p.bytes, &mut batch);
            std::mem::take(&mut p.acks)
        };
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
        batch.clear();
        if batch.capacity() > KEEP_CAPACITY {
            batch.shrink_to(KEEP_CAPACITY);
        }
        std::thread::sleep(BATCH_INTERVAL);
    }
}

/// Starts the access log writer (only the first call counts: targets change at restart).
pub fn init_access(target: &str) -> std::io::Result<()> {
    if ACCESS.get().is_none() {
        let _ = ACCESS.set(Sink::for_target(target)?);
    }
    Ok(())
}

/// Starts the audit log writer.
pub fn init_audit(target: &str) -> std::io::Result<()> {
    if AUDIT.get().is_none() {
        let _ = AUDIT.set(Sink::for_target(target)?);
    }
    Ok(())
}

/// Waits (at most a second per target) until queued lines are written, for a clean exit.
pub fn flush() {
    let sinks: Vec<Arc<Sink>> = SINKS.lock().values().cloned().collect();
    for sink in sinks {
        sink.flush(std::time::Duration::from_secs(1));
    }
}

thread_local! {
    /// The buffer a line is built in, reused by the thread's next line.
    static LINE_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

pub struct Line {
    buf: Vec<u8>,
    first: bool,
}

impl Line {
    pub fn new() -> Self {
        let mut buf = LINE_BUF.take();
        if buf.capacity() == 0 {
            buf.reserve(512);
        }
        buf.clear();
        buf.push(b'{');
        Self { buf, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        escape_into(&mut self.buf, v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k);
                self.buf.extend_from_slice(b"null");
                self
            }
        }
    }

    pub fn num(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        self
    }

    pub fn millis(&mut self, k: &str, d: std::time::Duration) -> &mut Self {
        self.key(k);
        let us = d.as_micros() as u64;
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(us / 1000).as_bytes());
        self.buf.push(b'.');
        crate::textfmt::push_padded(&mut self.buf, us % 1000, 3);
        self
    }

    /// The current time, RFC 3339 UTC with microseconds.
    pub fn time(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push(b'"');
        crate::textfmt::push_now(&mut self.buf);
        self.buf.push(b'"');
        self
    }

    pub fn opt_ip(&mut self, k: &str, v: Option<std::net::IpAddr>) -> &mut Self {
        self.key(k);
        match v {
            Some(ip) => {
                self.buf.push(b'"');
                crate::textfmt::push_ip(&mut self.buf, ip);
                self.buf.push(b'"');
            }
            None => self.buf.extend_from_slice(b"null"),
        }
        self
    }

    pub fn opt_addr(&mut self, k: &str, v: Option<std::net::SocketAddr>) -> &mut Self {
        self.key(k);
        match v {
            Some(a) => {
                self.buf.push(b'"');
                crate::textfmt::push_socket_addr(&mut self.buf, a);
                self.buf.push(b'"');
            }
            None => self.buf.extend_from_slice(b"null"),
        }
        self
    }

    /// Queues the line on `sink`; drops it (and counts the drop) if the writer is behind.
    pub fn send(mut self, sink: Option<&Arc<Sink>>) {
        self.buf.extend_from_slice(b"}\n");
        if let Some(s) = sink {
            s.send(&self.buf);
        }
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        // An unusually long line (a huge path) is not kept for every later one.
        if self.buf.capacity() <= 16 * 1024 {
            LINE_BUF.set(std::mem::take(&mut self.buf));
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends `s` as a JSON string literal.
pub fn escape_into(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Most values need no escaping: find the next byte that does and copy the run before it
    // whole.
    while let Some(off) = first_to_escape(&bytes[start..]) {
        let i = start + off;
        buf.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 0xf) as usize]);
            }
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Where the first byte of `bytes` that [`NEEDS_ESCAPE`] is. Eight bytes are tested at a time,
/// which costs less than a byte-by-byte table scan on the paths, ids and agents a line holds;
/// the table then finds the byte within the first word that has one.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Sets the high bit of bytes below `n` (n ≤ 0x80). Exact as to whether any byte is: a
    // borrow can only mark a byte above one that is.
    const fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * n as u64) & !x & HIGHS
    }
    const fn equal(x: u64, b: u8) -> u64 {
        below(x ^ (ONES * b as u64), 1)
    }
    let mut at = 0;
    for w in bytes.chunks_exact(8) {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if below(x, 0x20) | equal(x, b'"') | equal(x, b'\\') | equal(x, 0x7f) != 0 {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[b as usize])
        .map(|i| at + i)
}

/// `"`, `\`, the C0 controls and DEL.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_target(dir: &tempfile::TempDir, name: &str) -> String {
        dir.path().join(name).display().to_string()
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_order_per_thread() {
        let dir = tempfile::tempdir().unwrap();
        let target = temp_target(&dir, "access.log");
        let sink = Sink::for_target(&target).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        let mut l = Line::new();
                        l.num("thread", t)
                            .num("seq", i)
                            .str("pad", &"x".repeat((i % 700) as usize));
                        l.send(Some(&sink));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sink.flush(std::time::Duration::from_secs(10));
        let text = std::fs::read_to_string(&target).unwrap();
        let mut next = [0u64; 4];
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            let t = v["thread"].as_u64().unwrap() as usize;
            assert_eq!(
                v["seq"].as_u64().unwrap(),
                next[t],
                "thread {t} out of order"
            );
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn a_stuck_writer_costs_dropped_lines_not_memory() {
        let dir = tempfile::tempdir().unwrap();
        let target = temp_target(&dir, "fifo");
        let made = std::process::Command::new("mkfifo").arg(&target).status();
        assert!(made.unwrap().success());
        // A reader that never reads: the writer fills the pipe and blocks.
        use std::os::unix::fs::OpenOptionsExt;
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&target)
            .unwrap();
        let sink = Sink::for_target(&target).unwrap();
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        // Twice the pipe's 64 KiB, then wait until the writer has taken it: it is now blocked
        // in its write for good, and nothing more leaves the pending buffer.
        for _ in 0..128 {
            sink.send(&line);
        }
        while !sink.shared.pending.lock().bytes.is_empty() {
            std::thread::yield_now();
        }
        let before = crate::metrics::ACCESS_LOG_DROPPED_TOTAL.get();
        let fits = MAX_PENDING_BYTES / line.len();
        let sent = fits + fits / 2;
        for _ in 0..sent {
            sink.send(&line);
        }
        assert_eq!(sink.shared.pending.lock().bytes.len(), fits * line.len());
        // Other tests may count drops of their own at the same time, never fewer.
        let dropped = crate::metrics::ACCESS_LOG_DROPPED_TOTAL.get() - before;
        assert!(
            dropped as usize >= sent - fits,
            "dropped {dropped} of {sent}"
        );
        drop(reader);
    }

    #[test]
    fn the_word_scan_finds_what_the_table_finds() {
        let table = |b: &[u8]| b.iter().position(|&c| NEEDS_ESCAPE[c as usize]);
        // Every byte value at every offset of runs up to three words long, ahead of bytes that
        // would also be found (a scan reporting a later one fails).
        for len in [1usize, 7, 8, 9, 16, 23] {
            let clean: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(first_to_escape(&clean), None);
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut b = clean.clone();
                    b[at] = v;
                    b.extend_from_slice(b"\"\x01");
                    assert_eq!(first_to_escape(&b), table(&b), "{v:#x} at {at} of {len}");
                }
            }
        }
        assert_eq!(first_to_escape(b""), None);
        // UTF-8 and the bytes next to each threshold the word test relies on.
        let near = "\u{e9}\u{20ac}\u{1f600} !#[]~\u{80}\u{ff}abcdefgh\x1f".as_bytes();
        assert_eq!(first_to_escape(near), Some(near.len() - 1));
    }

    #[test]
    fn lines_are_valid_json() {
        let mut l = Line::new();
        l.str("path", "/a\"b\\c\n\u{1}\u{7f}\té")
            .num("status", 200)
            .millis("duration_ms", std::time::Duration::from_micros(1234))
            .opt_str("upstream", None)
            .time("time")
            .opt_ip("client", "10.0.0.7".parse().ok())
            .opt_addr("peer", "[::1]:8443".parse().ok())
            .opt_ip("none", None);
        let mut bytes = l.as_bytes().to_vec();
        bytes.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["path"], "/a\"b\\c\n\u{1}\u{7f}\té");
        assert!(v["time"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok());
        assert_eq!(v["client"], "10.0.0.7");
        assert_eq!(v["peer"], "[::1]:8443");
        assert!(v["none"].is_null());
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"].as_f64(), Some(1.234));
        assert!(v["upstream"].is_null());
    }
}
