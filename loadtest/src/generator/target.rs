//! What every request looks like: the address, the request line and headers built once, plus
//! the per-request Authorization (or Cookie) values rotated from a tokens file.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Empty;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

/// Why a target could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not a URL like http://127.0.0.1:8080/path")]
    Url(String),
    #[error("only http:// URLs are supported (TLS is not): `{0}`")]
    Scheme(String),
    #[error("cannot resolve `{0}`: {1}")]
    Resolve(String, String),
    #[error("`{0}` is not a header: expected `Name: value`")]
    Header(String),
    #[error("cannot read the tokens file {0}: {1}")]
    TokensRead(String, std::io::Error),
    #[error("the tokens file {0} has no values (one header value per line)")]
    TokensEmpty(String),
    // The value itself is never printed: it is a credential.
    #[error("line {1} of the tokens file {0} is not a valid header value")]
    TokenValue(String, usize),
}

/// Header values used one per request in turn (distinct users or sessions).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub header: HeaderName,
    pub values: Vec<HeaderValue>,
}

impl Tokens {
    /// Reads one header value per line (blank lines skipped) for header `header`.
    pub fn from_file(path: &Path, header: HeaderName) -> Result<Self, TargetError> {
        let name = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| TargetError::TokensRead(name.clone(), e))?;
        Self::parse(&text, header, &name)
    }

    /// Parses the text of a tokens file (`file` names it in errors).
    pub fn parse(text: &str, header: HeaderName, file: &str) -> Result<Self, TargetError> {
        let mut values = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut v = HeaderValue::from_str(line)
                .map_err(|_| TargetError::TokenValue(file.to_string(), n + 1))?;
            v.set_sensitive(true);
            values.push(v);
        }
        if values.is_empty() {
            return Err(TargetError::TokensEmpty(file.to_string()));
        }
        Ok(Self { header, values })
    }
}

/// A parsed `Name: value` header argument.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), TargetError> {
    let bad = || TargetError::Header(s.to_string());
    let (name, value) = s.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

/// The request every connection sends, prepared once.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, for the report.
    pub url: String,
    pub addr: SocketAddr,
    pub http2: bool,
    method: Method,
    /// Origin-form for HTTP/1.1 (`/path?q`), absolute for HTTP/2 (`:scheme` and `:authority`).
    uri: Uri,
    headers: HeaderMap,
    tokens: Option<Tokens>,
}

impl Target {
    /// Prepares requests to `url` with extra `headers` (a `Host` given here replaces the URL's).
    pub fn new(
        url: &str,
        method: Method,
        headers: Vec<(HeaderName, HeaderValue)>,
        tokens: Option<Tokens>,
        http2: bool,
    ) -> Result<Self, TargetError> {
        let parsed: Uri = url.parse().map_err(|_| TargetError::Url(url.to_string()))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(TargetError::Scheme(url.to_string())),
            None => return Err(TargetError::Url(url.to_string())),
        }
        let authority = parsed
            .authority()
            .ok_or_else(|| TargetError::Url(url.to_string()))?
            .clone();
        let host_port = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| TargetError::Resolve(host_port.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| TargetError::Resolve(host_port.clone(), "no address".into()))?;
        let path = parsed
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/");
        let uri = if http2 {
            Uri::builder()
                .scheme("http")
                .authority(authority.clone())
                .path_and_query(path)
                .build()
        } else {
            Uri::builder().path_and_query(path).build()
        }
        .map_err(|_| TargetError::Url(url.to_string()))?;

        let mut map = HeaderMap::new();
        if !http2 {
            // The low-level client sends exactly the headers it is given; HTTP/1.1 needs Host.
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| TargetError::Url(url.to_string()))?;
            map.insert(HOST, host);
        }
        for (name, value) in headers {
            map.insert(name, value);
        }
        Ok(Self {
            url: url.to_string(),
            addr,
            http2,
            method,
            uri,
            headers: map,
            tokens,
        })
    }

    /// Request number `i`: the shared headers plus the `i`-th token in rotation.
    pub fn request(&self, i: u64) -> Request<Empty<Bytes>> {
        let mut req = Request::new(Empty::new());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        if let Some(t) = &self.tokens {
            let v = &t.values[(i % t.values.len() as u64) as usize];
            req.headers_mut().insert(t.header.clone(), v.clone());
        }
        req
    }

    /// How many distinct token values rotate (0 without a tokens file).
    pub fn token_count(&self) -> usize {
        self.tokens.as_ref().map_or(0, |t| t.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;

    #[test]
    fn http1_requests_use_origin_form_and_a_host_header() {
        let t = Target::new(
            "http://127.0.0.1:8080/a?b=1",
            Method::GET,
            vec![],
            None,
            false,
        )
        .unwrap();
        let r = t.request(0);
        assert_eq!(r.uri(), "/a?b=1");
        assert_eq!(r.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
    }

    #[test]
    fn http2_requests_are_absolute_and_given_headers_win() {
        let host = parse_header("Host: app.example.com").unwrap();
        let t = Target::new("http://127.0.0.1:81", Method::GET, vec![host], None, true).unwrap();
        let r = t.request(0);
        assert_eq!(r.uri(), "http://127.0.0.1:81/");
        assert_eq!(r.headers()[HOST], "app.example.com");
    }

    #[test]
    fn tokens_rotate_per_request() {
        let tokens =
            Tokens::parse("Bearer a\n\nBearer b\r\nBearer c\n", AUTHORIZATION, "t").unwrap();
        let t = Target::new(
            "http://127.0.0.1:1/",
            Method::GET,
            vec![],
            Some(tokens),
            false,
        )
        .unwrap();
        let seen: Vec<_> = (0..4)
            .map(|i| {
                t.request(i).headers()[AUTHORIZATION]
                    .to_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(seen, ["Bearer a", "Bearer b", "Bearer c", "Bearer a"]);
        assert_eq!(t.token_count(), 3);
    }

    #[test]
    fn bad_inputs_are_explained_without_echoing_tokens() {
        assert!(matches!(
            Target::new("https://x/", Method::GET, vec![], None, false),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            Target::new("not a url", Method::GET, vec![], None, false),
            Err(TargetError::Url(_))
        ));
        assert!(parse_header("no colon").is_err());
        let e = Tokens::parse("ok\nsecret\u{7f}value\n", AUTHORIZATION, "t.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2 of the tokens file t.txt is not a valid header value"
        );
        assert!(matches!(
            Tokens::parse("\n\n", AUTHORIZATION, "t"),
            Err(TargetError::TokensEmpty(_))
        ));
    }
}
