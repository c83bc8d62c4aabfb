//! Reading Kubernetes manifests: multi-document YAML (and `kind: List`), keeping the Ingresses
//! (`networking.k8s.io/v1`, and the older `v1beta1` shape with a note) and the Services (to
//! resolve named ports). Everything else is listed as skipped.

use std::collections::BTreeMap;
use yaml_rust2::{Yaml, YamlLoader};

/// A Service port a backend may refer to: `port` by number or by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Service {
        name: String,
        port: PortRef,
    },
    /// `backend.resource` (an object, not a Service): nothing to proxy to.
    Resource,
    /// Missing or malformed.
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct PathEntry {
    pub path: String,
    pub path_type: String,
    pub backend: Backend,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub host: Option<String>,
    pub paths: Vec<PathEntry>,
}

#[derive(Debug, Clone)]
pub struct TlsEntry {
    pub hosts: Vec<String>,
    pub secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Ingress {
    /// The file it came from, as named on the command line.
    pub file: String,
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub class: Option<String>,
    pub default_backend: Option<Backend>,
    pub tls: Vec<TlsEntry>,
    pub rules: Vec<Rule>,
    /// Read from `extensions/v1beta1` or `networking.k8s.io/v1beta1`.
    pub legacy_api: Option<String>,
}

impl Ingress {
    /// `namespace/name`, as reports name it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What the inputs held.
#[derive(Debug, Default)]
pub struct Manifests {
    pub ingresses: Vec<Ingress>,
    /// (namespace, service) → (port name, port number).
    pub service_ports: BTreeMap<(String, String), Vec<(String, u16)>>,
    /// One line per document that is not an Ingress.
    pub skipped: Vec<String>,
}

/// A scalar as text (annotations are strings, but unquoted numbers and booleans happen).
pub fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_of(y: &Yaml) -> Option<String> {
    y.as_str().map(str::to_string)
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

impl Manifests {
    /// Reads one file's text; a YAML error is returned as a message.
    pub fn read(&mut self, file: &str, text: &str) -> Result<(), String> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| format!("{file}: {e}"))?;
        for (i, doc) in docs.iter().enumerate() {
            self.document(file, i + 1, doc);
        }
        Ok(())
    }

    fn document(&mut self, file: &str, n: usize, doc: &Yaml) {
        let kind = doc["kind"].as_str().unwrap_or("");
        let api = doc["apiVersion"].as_str().unwrap_or("");
        let name = doc["metadata"]["name"].as_str().unwrap_or("?");
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
        match kind {
            "List" => {
                for item in list(&doc["items"]) {
                    self.document(file, n, item);
                }
            }
            "Ingress" => match api {
                "networking.k8s.io/v1" => self.ingresses.push(ingress(file, doc, None)),
                "networking.k8s.io/v1beta1" | "extensions/v1beta1" => {
                    self.ingresses.push(ingress(file, doc, Some(api.to_string())))
                }
                _ => self.skipped.push(format!(
                    "{file}: document {n}: Ingress {ns}/{name} has apiVersion `{api}`, not networking.k8s.io/v1"
                )),
            },
            "Service" => {
                let ports = list(&doc["spec"]["ports"])
                    .iter()
                    .filter_map(|p| {
                        let port = p["port"].as_i64().and_then(|v| u16::try_from(v).ok())?;
                        Some((p["name"].as_str().unwrap_or("").to_string(), port))
                    })
                    .collect();
                self.service_ports
                    .insert((ns.to_string(), name.to_string()), ports);
                self.skipped.push(format!(
                    "{file}: document {n}: Service {ns}/{name} (read for its port names only)"
                ));
            }
            "" if matches!(doc, Yaml::Null) => {}
            "" => self
                .skipped
                .push(format!("{file}: document {n}: not a Kubernetes object")),
            other => self.skipped.push(format!(
                "{file}: document {n}: {other} {ns}/{name} (not an Ingress)"
            )),
        }
    }
}

fn backend(b: &Yaml) -> Backend {
    if !matches!(b["resource"], Yaml::BadValue | Yaml::Null) {
        return Backend::Resource;
    }
    // v1: service: { name, port: { number | name } }
    let svc = &b["service"];
    if let Some(name) = str_of(&svc["name"]) {
        let port = &svc["port"];
        return match (port["number"].as_i64(), str_of(&port["name"])) {
            (Some(n), _) => match u16::try_from(n) {
                Ok(p) if p > 0 => Backend::Service {
                    name,
                    port: PortRef::Number(p),
                },
                _ => Backend::Invalid(format!("port {n} is out of range")),
            },
            (None, Some(pn)) => Backend::Service {
                name,
                port: PortRef::Name(pn),
            },
            _ => Backend::Invalid(format!("service `{name}` has no port")),
        };
    }
    // v1beta1: serviceName, servicePort (number or name)
    if let Some(name) = str_of(&b["serviceName"]) {
        return match &b["servicePort"] {
            Yaml::Integer(n) => match u16::try_from(*n) {
                Ok(p) if p > 0 => Backend::Service {
                    name,
                    port: PortRef::Number(p),
                },
                _ => Backend::Invalid(format!("port {n} is out of range")),
            },
            Yaml::String(s) => match s.parse::<u16>() {
                Ok(p) if p > 0 => Backend::Service {
                    name,
                    port: PortRef::Number(p),
                },
                _ => Backend::Service {
                    name,
                    port: PortRef::Name(s.clone()),
                },
            },
            _ => Backend::Invalid(format!("service `{name}` has no port")),
        };
    }
    Backend::Invalid("no service backend".into())
}

fn ingress(file: &str, doc: &Yaml, legacy_api: Option<String>) -> Ingress {
    let meta = &doc["metadata"];
    let spec = &doc["spec"];
    let annotations = meta["annotations"]
        .as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let default_backend = match (&spec["defaultBackend"], &spec["backend"]) {
        (Yaml::Hash(_), _) => Some(backend(&spec["defaultBackend"])),
        (_, Yaml::Hash(_)) => Some(backend(&spec["backend"])),
        _ => None,
    };
    let tls = list(&spec["tls"])
        .iter()
        .map(|t| TlsEntry {
            hosts: list(&t["hosts"]).iter().filter_map(str_of).collect(),
            secret: str_of(&t["secretName"]),
        })
        .collect();
    let rules = list(&spec["rules"])
        .iter()
        .map(|r| Rule {
            host: str_of(&r["host"]),
            paths: list(&r["http"]["paths"])
                .iter()
                .map(|p| PathEntry {
                    path: str_of(&p["path"]).unwrap_or_else(|| "/".into()),
                    path_type: str_of(&p["pathType"])
                        .unwrap_or_else(|| "ImplementationSpecific".into()),
                    backend: backend(&p["backend"]),
                })
                .collect(),
        })
        .collect();
    Ingress {
        file: file.to_string(),
        namespace: meta["namespace"].as_str().unwrap_or("default").to_string(),
        name: meta["name"].as_str().unwrap_or("unnamed").to_string(),
        annotations,
        class: str_of(&spec["ingressClassName"]),
        default_backend,
        tls,
        rules,
        legacy_api,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_v1beta1_lists_and_services() {
        let mut m = Manifests::default();
        m.read(
            "in.yaml",
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web, namespace: shop, annotations: { a: "1", b: 2 } }
spec:
  ingressClassName: nginx
  tls: [{ hosts: [shop.example.com], secretName: shop-tls }]
  rules:
    - host: shop.example.com
      http:
        paths:
          - { path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }
          - { path: /api, pathType: Exact, backend: { service: { name: api, port: { name: http } } } }
          - { path: /x, backend: { resource: { kind: Bucket, name: b } } }
---
apiVersion: v1
kind: List
items:
  - apiVersion: extensions/v1beta1
    kind: Ingress
    metadata: { name: old }
    spec:
      backend: { serviceName: legacy, servicePort: 8080 }
  - apiVersion: v1
    kind: Service
    metadata: { name: api, namespace: shop }
    spec: { ports: [{ name: http, port: 8000 }] }
---
kind: ConfigMap
apiVersion: v1
metadata: { name: cm }
"#,
        )
        .unwrap();
        assert_eq!(m.ingresses.len(), 2);
        let web = &m.ingresses[0];
        assert_eq!(web.id(), "shop/web");
        assert_eq!(web.annotations["b"], "2");
        assert_eq!(web.class.as_deref(), Some("nginx"));
        assert_eq!(web.tls[0].secret.as_deref(), Some("shop-tls"));
        let paths = &web.rules[0].paths;
        assert_eq!(
            paths[0].backend,
            Backend::Service {
                name: "web".into(),
                port: PortRef::Number(80)
            }
        );
        assert_eq!(paths[1].path_type, "Exact");
        assert_eq!(
            paths[1].backend,
            Backend::Service {
                name: "api".into(),
                port: PortRef::Name("http".into())
            }
        );
        assert_eq!(paths[2].backend, Backend::Resource);
        assert_eq!(paths[2].path_type, "ImplementationSpecific");
        let old = &m.ingresses[1];
        assert_eq!(old.id(), "default/old");
        assert!(old.legacy_api.is_some());
        assert_eq!(
            old.default_backend,
            Some(Backend::Service {
                name: "legacy".into(),
                port: PortRef::Number(8080)
            })
        );
        assert_eq!(
            m.service_ports[&("shop".into(), "api".into())],
            [("http".to_string(), 8000)]
        );
        assert_eq!(m.skipped.len(), 2, "{:?}", m.skipped);
        assert!(m
            .read("bad.yaml", "a: [")
            .unwrap_err()
            .starts_with("bad.yaml:"));
    }
}
