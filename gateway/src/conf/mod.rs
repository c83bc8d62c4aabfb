//! Conf files: strict YAML (`yaml.rs`), operator-facing types (`types.rs`), semantic checks
//! (`validate.rs`). Every error names file, line, column and field.

pub mod types;
pub mod validate;
pub mod yaml;

use std::path::Path;
pub use yaml::{ConfError, Document};

/// A parsed and validated conf, with its marked YAML tree for locating later errors.
pub struct Loaded {
    pub conf: types::ConfFile,
    pub doc: Document,
    pub file: String,
}

impl Loaded {
    /// Locates errors found after parsing (snapshot build) in this file.
    pub fn locate(&self, errs: Vec<warden_plugins::conf::FieldError>) -> Vec<ConfError> {
        let mut out: Vec<ConfError> = errs
            .into_iter()
            .map(|e| self.doc.error(&e.path, e.message))
            .collect();
        out.sort_by_key(|e| (e.line, e.column));
        out
    }
}

/// Reads, parses and validates a conf file; every problem found is returned.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfError>> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfError {
            file: file.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the conf file: {e}"),
        }]
    })?;
    parse(&src, &file)
}

/// Parses conf text; relative file paths in it are resolved against `file`'s directory.
/// Identity sections keep plain `PathBuf`s; relative ones are made relative to the conf file's
/// directory here, as `ConfPath` does for the gateway's own sections.
fn resolve_plugin_paths(conf: &mut types::ConfFile, base: &Path) {
    let fix = |p: &mut std::path::PathBuf| {
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    };
    if let Some(c) = &mut conf.identity.cookie {
        fix(&mut c.secret_file);
    }
    for i in &mut conf.identity.jwt_issuers {
        for p in [&mut i.jwks_file, &mut i.ca_file, &mut i.token_file]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
    }
}

pub fn parse(src: &str, file: &str) -> Result<Loaded, Vec<ConfError>> {
    let base = Path::new(file).parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let base = base
        .and_then(|b| b.canonicalize().ok())
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    let (mut conf, doc) = warden_plugins::conf::with_base_dir(&base, || {
        yaml::from_str::<types::ConfFile>(src, file)
    })?;
    resolve_plugin_paths(&mut conf, &base);
    let loaded = Loaded {
        conf,
        doc,
        file: file.to_string(),
    };
    let errs = validate::validate(&loaded.conf);
    if errs.is_empty() {
        Ok(loaded)
    } else {
        Err(loaded.locate(errs))
    }
}
