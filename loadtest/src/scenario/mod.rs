//! Scenario files: what to start, what load to send in which phases, what churn to apply, what
//! must hold, and which figures to report. Parsed with Warden's own strict YAML front end, so
//! every error reads `file:line:column: field.path: message`, all of them at once.

pub mod churn;
pub mod command;
pub mod describe;
pub mod driver;
pub mod gateway;
pub mod plan;
pub mod runner;
pub mod spec;
pub mod upstream;

use std::path::{Path, PathBuf};
use warden::conf::yaml;
pub use warden::conf::ConfError;

/// A loaded and checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file it came from.
    pub path: PathBuf,
    /// Its directory: relative paths inside resolve against it, processes start in it.
    pub dir: PathBuf,
    pub plan: plan::Plan,
}

/// Reads, parses and checks a scenario file; every problem found is returned.
pub fn load(path: &Path) -> Result<Scenario, Vec<ConfError>> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfError {
            file: file.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the scenario file: {e}"),
        }]
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Absolute, because processes start in this directory: a path relative to the caller's
    // working directory would not resolve from there.
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let plan = parse(&src, &file, &dir)?;
    Ok(Scenario {
        path: path.to_path_buf(),
        dir,
        plan,
    })
}

/// Parses and checks scenario text read from `file`, with relative paths under `dir`.
pub fn parse(src: &str, file: &str, dir: &Path) -> Result<plan::Plan, Vec<ConfError>> {
    let (spec, doc) = warden_plugins::conf::with_base_dir(dir, || {
        yaml::from_str::<spec::ScenarioFile>(src, file)
    })?;
    plan::resolve(spec).map_err(|errs| {
        let mut out: Vec<ConfError> = errs
            .into_iter()
            .map(|e| doc.error(&e.path, e.message))
            .collect();
        out.sort_by_key(|e| (e.line, e.column));
        out
    })
}

#[cfg(test)]
mod tests;
