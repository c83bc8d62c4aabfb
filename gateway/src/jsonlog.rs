//! JSON log lines (the access log, the audit log) with stable field names, written by a
//! dedicated thread per target so that a slow sink never stalls the proxy: lines are queued
//! (bounded) and dropped, and counted, when the writer falls behind. Logs sharing a target
//! share its writer, so their lines never interleave.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, LazyLock, OnceLock};

const QUEUE_LINES: usize = 65_536;

/// A writer thread for one target (`stdout`, `stderr` or a file path, appended to).
pub struct Sink {
    tx: SyncSender<Vec<u8>>,
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
        let (tx, rx) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("warden-log".into())
            .spawn(move || write_loop(rx, out))?;
        let sink = Arc::new(Sink { tx });
        sinks.insert(target.to_string(), sink.clone());
        Ok(sink)
    }

    fn send(&self, line: Vec<u8>) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            crate::metrics::ACCESS_LOG_DROPPED_TOTAL.inc();
        }
    }
}

fn write_loop(rx: Receiver<Vec<u8>>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(line) = rx.recv() {
        let _ = out.write_all(&line);
        // Drain what is queued, then flush once: one syscall per burst, not per line.
        while let Ok(line) = rx.try_recv() {
            let _ = out.write_all(&line);
        }
        let _ = out.flush();
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

/// Waits (briefly) until queued lines are written, for a clean exit.
pub fn flush() {
    let sinks: Vec<Arc<Sink>> = SINKS.lock().values().cloned().collect();
    for sink in sinks {
        // An empty line is a no-op write; once it is taken, what was queued before it is
        // being written.
        for _ in 0..50 {
            match sink.tx.try_send(Vec::new()) {
                Ok(()) => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
}

pub struct Line {
    buf: Vec<u8>,
    first: bool,
}

impl Line {
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(384);
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
        let frac = us % 1000;
        self.buf.extend_from_slice(format!("{frac:03}").as_bytes());
        self
    }

    /// Queues the line on `sink`; drops it (and counts the drop) if the writer is behind.
    pub fn send(mut self, sink: Option<&Arc<Sink>>) {
        self.buf.extend_from_slice(b"}\n");
        if let Some(s) = sink {
            s.send(self.buf);
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
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(esc);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_valid_json() {
        let mut l = Line::new();
        l.str("path", "/a\"b\\c\n\u{1}")
            .num("status", 200)
            .millis("duration_ms", std::time::Duration::from_micros(1234))
            .opt_str("upstream", None);
        let mut bytes = l.as_bytes().to_vec();
        bytes.push(b'}');
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["path"], "/a\"b\\c\n\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"].as_f64(), Some(1.234));
        assert!(v["upstream"].is_null());
    }
}
