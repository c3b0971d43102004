//! Request and header rewriting between the downstream and upstream
//! connections: HTTP version, URI form, Host, hop-by-hop headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri, Version};

/// How the access log names an HTTP version.
pub fn version_label(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// The request path (with query) or `/`.
pub fn path(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |p| p.as_str())
}

/// The request's authority: URI authority (h2, absolute-form) or Host header.
pub fn authority<B>(req: &Request<B>) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// Prepares the request for the upstream connection. HTTP/1.1: origin-form
/// URI and a Host header (from the URI authority if it had one). HTTP/2:
/// absolute URI (`:scheme`, `:authority`). Both: no hop-by-hop headers.
pub fn prepare<B>(req: &mut Request<B>, h2: bool) -> Result<(), StatusCode> {
    let auth = authority(req).ok_or(StatusCode::BAD_REQUEST)?;
    if h2 {
        if req.uri().scheme().is_none() || req.uri().authority().is_none() {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let uri = Uri::builder()
                .scheme("http")
                .authority(auth)
                .path_and_query(pq)
                .build()
                .map_err(|_| StatusCode::BAD_REQUEST)?;
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_2;
    } else {
        if req.uri().authority().is_some() {
            let host = HeaderValue::from_str(auth).map_err(|_| StatusCode::BAD_REQUEST)?;
            let pq = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            req.headers_mut().entry(header::HOST).or_insert(host);
            *req.uri_mut() = Uri::from(pq);
        }
        *req.version_mut() = Version::HTTP_11;
    }
    strip_hop_by_hop(req.headers_mut(), h2);
    Ok(())
}

/// True for headers that only concern one connection (RFC 9110 §7.6.1).
fn is_hop_by_hop(n: &HeaderName) -> bool {
    n == header::CONNECTION
        || n == header::PROXY_AUTHORIZATION
        || n == header::TE
        || n == header::TRAILER
        || n == header::TRANSFER_ENCODING
        || n == header::UPGRADE
        || n.as_str() == "keep-alive"
        || n.as_str() == "proxy-connection"
}

/// Removes connection-specific headers (RFC 9110 §7.6.1) and those the
/// `Connection` header names. `TE: trailers` is kept for HTTP/2 (gRPC).
pub fn strip_hop_by_hop(h: &mut HeaderMap, h2: bool) {
    let mut names: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    if names.is_empty() {
        return;
    }
    for v in h.get_all(header::CONNECTION) {
        for name in v.to_str().unwrap_or("").split(',') {
            let name = name.trim();
            if !name.eq_ignore_ascii_case("close")
                && !name.eq_ignore_ascii_case("keep-alive")
                && let Ok(n) = HeaderName::from_bytes(name.as_bytes())
            {
                names.push(n);
            }
        }
    }
    let te_trailers = h2
        && h.get(header::TE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for n in names {
        h.remove(n);
    }
    if te_trailers {
        h.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut r = req(
            Version::HTTP_11,
            "/a",
            &[
                ("host", "svc"),
                ("connection", "keep-alive, x-private"),
                ("x-private", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic x"),
                ("upgrade", "websocket"),
                ("te", "trailers"),
                ("x-kept", "1"),
            ],
        );
        prepare(&mut r, false).unwrap();
        let names: Vec<_> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept"]);
    }

    #[test]
    fn te_trailers_survives_only_towards_http2() {
        let mut r = req(
            Version::HTTP_2,
            "http://svc/pkg.Svc/Call",
            &[("te", "trailers"), ("connection", "close")],
        );
        prepare(&mut r, true).unwrap();
        assert_eq!(r.headers()["te"], "trailers");
        assert!(!r.headers().contains_key("connection"));
        let mut r = req(Version::HTTP_2, "http://svc/x", &[("te", "gzip")]);
        prepare(&mut r, true).unwrap();
        assert!(!r.headers().contains_key("te"));
    }

    #[test]
    fn http2_to_http1_gets_origin_form_and_host() {
        let mut r = req(Version::HTTP_2, "http://svc.test:8080/p?q=1", &[]);
        prepare(&mut r, false).unwrap();
        assert_eq!(r.uri(), "/p?q=1");
        assert_eq!(r.headers()["host"], "svc.test:8080");
        assert_eq!(r.version(), Version::HTTP_11);
    }

    #[test]
    fn http1_to_http2_gets_scheme_and_authority() {
        let mut r = req(Version::HTTP_11, "/p", &[("host", "svc.test")]);
        prepare(&mut r, true).unwrap();
        assert_eq!(r.uri(), "http://svc.test/p");
        assert_eq!(r.version(), Version::HTTP_2);
    }

    #[test]
    fn no_authority_or_a_bad_one_is_a_bad_request() {
        let mut r = req(Version::HTTP_10, "/p", &[]);
        assert_eq!(prepare(&mut r, false), Err(StatusCode::BAD_REQUEST));
        let mut r = req(Version::HTTP_11, "/p", &[("host", "bad host/")]);
        assert_eq!(prepare(&mut r, true), Err(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_header_free_request_is_untouched() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(version_label(Version::HTTP_2), "HTTP/2");
        assert_eq!(path(&Uri::from_static("http://a")), "/");
    }
}
