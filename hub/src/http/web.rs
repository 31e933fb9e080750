//! The dashboard's files: `web/dist` (built by Vite from `web/src`, committed)
//! embedded in the binary by rust-embed, gzipped once when the router is
//! built, served with cache headers (hashed `/assets/*` names forever, the
//! page itself `no-cache`) and the security headers every response of the
//! hub's HTTP side carries ([`security_headers`]). Any other path that is not
//! an API route answers `index.html`: every dashboard page has its own URL
//! (`/agents/NAME`, `/agents/NAME/containers/CNAME`) and the browser's router
//! draws it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use rust_embed::RustEmbed;

use crate::limits::GZIP_MIN_BYTES;

#[derive(RustEmbed)]
#[folder = "../web/dist/"]
struct Dist;

/// The page every dashboard URL answers.
const INDEX: &str = "index.html";
/// Vite writes content-hashed names under `assets/`: a changed file is a new URL.
const HASHED_DIR: &str = "assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file, ready to serve.
#[derive(Debug)]
struct Asset {
    body: Bytes,
    /// The gzipped body, when that is smaller.
    gzip: Option<Bytes>,
    content_type: &'static str,
}

/// The embedded dashboard, by path (without the leading `/`).
#[derive(Debug)]
pub struct Assets {
    files: HashMap<String, Asset>,
    /// Whether the API is served over TLS (the CSP's WebSocket source).
    tls: bool,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    if data.len() < GZIP_MIN_BYTES {
        return None;
    }
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    enc.write_all(data).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < data.len()).then(|| Bytes::from(out))
}

impl Assets {
    /// Read and compress the embedded files (once, at start: a few ms).
    pub fn load(tls: bool) -> Arc<Assets> {
        let files = Dist::iter()
            .filter_map(|path| {
                let file = Dist::get(&path)?;
                let body = Bytes::from(file.data.into_owned());
                let asset = Asset {
                    gzip: gzip(&body),
                    body,
                    content_type: content_type(&path),
                };
                Some((path.into_owned(), asset))
            })
            .collect();
        Arc::new(Assets { files, tls })
    }

    /// Answer `GET`/`HEAD` for a path no API route took.
    pub fn serve(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
        if method != Method::GET && method != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        let path = uri.path().trim_start_matches('/');
        let (name, cache) = match self.files.get(path) {
            Some(_) if path.starts_with(HASHED_DIR) => (path, IMMUTABLE),
            Some(_) if path != INDEX => (path, "no-cache"),
            // A missing file under an API or asset prefix is a 404, not a page.
            None if path.starts_with(HASHED_DIR) || path.starts_with("api/") => {
                return plain(StatusCode::NOT_FOUND, "not found\n")
            }
            _ => (INDEX, "no-cache"),
        };
        let Some(asset) = self.files.get(name) else {
            return plain(
                StatusCode::NOT_FOUND,
                "this hub was built without the dashboard\n",
            );
        };
        let (body, gzipped) = match &asset.gzip {
            Some(gz) if accepts_gzip(headers) => (gz.clone(), true),
            _ => (asset.body.clone(), false),
        };
        let mut resp = Response::new(Body::from(body));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if gzipped {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if name == INDEX {
            if let Ok(csp) = HeaderValue::from_str(&csp(headers, self.tls)) {
                h.insert(header::CONTENT_SECURITY_POLICY, csp);
            }
        }
        resp
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// Whether the client takes gzip (`Accept-Encoding`, not refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',').any(|part| {
        let mut it = part.split(';').map(str::trim);
        let coding = it.next().unwrap_or_default();
        let refused = it.any(|p| p.replace(' ', "") == "q=0" || p == "q=0.0");
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// The page's Content-Security-Policy: its own scripts, styles and images
/// only, no inline code and no `eval`, connections only to itself (the
/// WebSocket to this very host named explicitly: browsers before CSP 3 do not
/// count `wss:` of the same host as `'self'`), never in a frame.
fn csp(headers: &HeaderMap, tls: bool) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
    let ws = match (host, tls) {
        (Some(h), true) => format!(" wss://{h}"),
        // Plain HTTP: the browser may see TLS at a proxy (wss) or not (ws).
        (Some(h), false) => format!(" wss://{h} ws://{h}"),
        (None, _) => String::new(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         font-src 'self'; connect-src 'self'{ws}; manifest-src 'self'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Headers every HTTP answer of the hub carries: no MIME sniffing, no
/// referrer leaving the hub, never framed.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(assets: &Assets, path: &str, gzip: bool) -> Response {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("hub.example:8080"));
        if gzip {
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("br, gzip;q=0.8"),
            );
        }
        assets.serve(&Method::GET, &path.parse().unwrap(), &h)
    }

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[test]
    fn the_page_answers_every_dashboard_url_with_its_csp_and_no_cache() {
        let assets = Assets::load(true);
        for path in [
            "/",
            "/agents/prod-1",
            "/agents/a/containers/web",
            "/index.html",
        ] {
            let r = get(&assets, path, false);
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache", "{path}");
            assert!(header(&r, header::CONTENT_TYPE).starts_with("text/html"));
            let csp = header(&r, header::CONTENT_SECURITY_POLICY);
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(
                csp.contains("connect-src 'self' wss://hub.example:8080;"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe"), "{csp}");
        }
        for path in ["/assets/nope.js", "/api/nope"] {
            assert_eq!(get(&assets, path, false).status(), StatusCode::NOT_FOUND);
        }
        let post = assets.serve(&Method::POST, &"/".parse().unwrap(), &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn hashed_assets_are_immutable_and_gzipped_when_asked() {
        let assets = Assets::load(true);
        let js = assets
            .files
            .keys()
            .find(|k| k.starts_with(HASHED_DIR) && k.ends_with(".js"))
            .expect("a built script under assets/")
            .clone();
        let r = get(&assets, &format!("/{js}"), true);
        assert_eq!(header(&r, header::CACHE_CONTROL), IMMUTABLE);
        assert_eq!(header(&r, header::CONTENT_ENCODING), "gzip");
        assert!(header(&r, header::CONTENT_TYPE).starts_with("text/javascript"));
        let asset = &assets.files[&js];
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&asset.gzip.as_ref().unwrap()[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, asset.body);
        let r = get(&assets, &format!("/{js}"), false);
        assert_eq!(header(&r, header::CONTENT_ENCODING), "");
    }

    #[test]
    fn gzip_is_read_from_accept_encoding() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("deflate, gzip;q=1.0"));
        assert!(with("*"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_hostile_host_header_does_not_reach_the_csp() {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("x; script-src 'unsafe-inline'"),
        );
        let csp = csp(&h, false);
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }
}
