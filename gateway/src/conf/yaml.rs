//! TEMPORARY shim until the real front end lands (parses via serde_json values; no positions).
use std::fmt;

#[derive(Debug, Clone, Copy)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.column, self.path, self.message
            )
        }
    }
}

pub struct Document {
    file: String,
}

impl Document {
    pub fn locate(&self, _path: &str) -> Location {
        Location { line: 1, column: 1 }
    }
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfError {
        ConfError {
            file: self.file.clone(),
            line: 1,
            column: 1,
            path: path.into(),
            message: message.into(),
        }
    }
}

fn conv(y: &yaml_rust2::Yaml) -> serde_json::Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r
            .parse::<f64>()
            .map(serde_json::Value::from)
            .unwrap_or_default(),
        Yaml::Integer(i) => (*i).into(),
        Yaml::String(s) => s.clone().into(),
        Yaml::Boolean(b) => (*b).into(),
        Yaml::Array(a) => a.iter().map(conv).collect(),
        Yaml::Hash(h) => h
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| format!("{k:?}")),
                    conv(v),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

pub fn from_str<T: serde::de::DeserializeOwned>(
    src: &str,
    file: &str,
) -> Result<(T, Document), Vec<ConfError>> {
    let e = |m: String| {
        vec![ConfError {
            file: file.into(),
            line: 1,
            column: 1,
            path: String::new(),
            message: m,
        }]
    };
    let docs = yaml_rust2::YamlLoader::load_from_str(src).map_err(|x| e(x.to_string()))?;
    let v = docs.first().map(conv).unwrap_or(serde_json::json!({}));
    let v = if v.is_null() {
        serde_json::json!({})
    } else {
        v
    };
    let t = serde_json::from_value(v).map_err(|x| e(x.to_string()))?;
    Ok((t, Document { file: file.into() }))
}
