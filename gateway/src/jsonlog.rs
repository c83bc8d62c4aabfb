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
    tx: SyncSender<Msg>,
}

enum Msg {
    Line(Vec<u8>),
    /// Write out everything queued before it, then answer.
    Flush(std::sync::mpsc::Sender<()>),
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
        if let Err(TrySendError::Full(_)) = self.tx.try_send(Msg::Line(line)) {
            crate::metrics::ACCESS_LOG_DROPPED_TOTAL.inc();
        }
    }
}

/// How long the writer rests after a flush. While it rests, senders only queue (no wake-up):
/// under load that is one wake-up and one write per interval instead of one per request, and
/// the queue holds 65,536 lines, far more than an interval brings.
const BATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

fn write_loop(rx: Receiver<Msg>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        // Drain what is queued, then flush once: one syscall per burst, not per line.
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
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
        let (ack, done) = std::sync::mpsc::channel();
        if sink.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
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
    // Most values need no escaping: scan with a table and copy runs whole.
    while let Some(off) = bytes[start..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[b as usize])
    {
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
