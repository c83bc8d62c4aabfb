//! `warden migrate-ingress FILE…`: Kubernetes Ingress manifests (ingress-nginx flavour) to a
//! Warden conf.
//!
//! - [`manifest`] reads the YAML (several documents per file, `kind: List`), keeping Ingresses
//!   and the Services that name their ports.
//! - [`annotations`] turns ingress-nginx annotations into route settings, or says why not.
//! - [`translate`] makes routes (one per host and path; Services as
//!   `svc.ns.svc.cluster.local:port`), certificates (`/etc/warden/tls/<secret>/tls.crt|key`)
//!   and the default route.
//! - [`emit`] writes the conf and the report.
//!
//! The output serves what ingress-nginx served: every route is `public: true`, marked
//! `MIGRATED-PUBLIC` in the conf and named in the report, so that protecting each one (`auth`
//! and a `policy`) is a visible, deliberate next step. It is checked like any conf before it is
//! written.

pub mod annotations;
pub mod emit;
pub mod manifest;
pub mod translate;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The generated conf and the report on it.
#[derive(Debug)]
pub struct Migration {
    pub conf: String,
    pub report: String,
    /// Problems `warden check` finds in the generated conf (empty unless a translation bug or
    /// an input Warden cannot express slipped through).
    pub conf_errors: Vec<String>,
}

/// Translates `(file name, contents)` pairs.
pub fn migrate(sources: &[(String, String)]) -> Result<Migration, String> {
    let mut m = manifest::Manifests::default();
    for (name, text) in sources {
        m.read(name, text)?;
    }
    if m.ingresses.is_empty() {
        return Err("no Ingress found in the input".into());
    }
    let t = translate::translate(&m);
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    let conf = emit::conf(&t, &names);
    let conf_errors = match crate::conf::parse(&conf, "migrated.yaml") {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    };
    Ok(Migration {
        conf,
        report: emit::report(&t),
        conf_errors,
    })
}

fn read_source(p: &Path) -> Result<(String, String), String> {
    let name = p.display().to_string();
    let mut text = String::new();
    let read = if name == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(p).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|e| format!("cannot read {name}: {e}"))?;
    Ok((name, text))
}

/// The command: the conf to stdout or `output`, the report to stderr. Exit status 1 when the
/// input cannot be read or the generated conf would not pass `warden check`.
pub fn cli(files: &[PathBuf], output: Option<&Path>) -> ExitCode {
    let sources: Result<Vec<_>, String> = files.iter().map(|f| read_source(f)).collect();
    let migration = match sources.and_then(|s| migrate(&s)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("warden migrate-ingress: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = match output {
        Some(path) => std::fs::write(path, &migration.conf)
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout()
            .write_all(migration.conf.as_bytes())
            .map_err(|e| format!("cannot write the conf: {e}")),
    };
    eprint!("{}", migration.report);
    if let Err(e) = written {
        eprintln!("warden migrate-ingress: {e}");
        return ExitCode::FAILURE;
    }
    if !migration.conf_errors.is_empty() {
        eprintln!("\nthe generated conf does not pass `warden check`:");
        for e in &migration.conf_errors {
            eprintln!("  {e}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
