//! Cacheable JSON answers with a strong ETag.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// A strong ETag of the body; `If-None-Match` that matches → 304.
pub fn cached_json(request_headers: &HeaderMap, body: Vec<u8>) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_round_trip() {
        let first = cached_json(&HeaderMap::new(), b"{\"a\":1}".to_vec());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, etag.clone());
        assert_eq!(cached_json(&headers, b"{\"a\":1}".to_vec()).status(), StatusCode::NOT_MODIFIED);
        // Another body, another tag.
        assert_eq!(cached_json(&headers, b"{\"a\":2}".to_vec()).status(), StatusCode::OK);
        let weak = HeaderValue::from_str(&format!("\"x\", W/{}", etag.to_str().unwrap())).unwrap();
        headers.insert(IF_NONE_MATCH, weak);
        assert_eq!(cached_json(&headers, b"{\"a\":1}".to_vec()).status(), StatusCode::NOT_MODIFIED);
    }
}
