//! Who is calling, as the platform saw it: for rate limits and the audit log.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};

/// Who is calling, for rate limits and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientMeta {
    pub fn from_parts(parts: &Parts) -> ClientMeta {
        ClientMeta::read(&parts.headers, &parts.extensions)
    }

    pub fn from_request(req: &Request) -> ClientMeta {
        ClientMeta::read(req.headers(), req.extensions())
    }

    fn read(headers: &HeaderMap, extensions: &Extensions) -> ClientMeta {
        ClientMeta {
            ip: client_ip(extensions),
            user_agent: headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(1000).collect()),
        }
    }

    /// The rate-limit key for an anonymous caller.
    pub fn ip_key(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
    }
}

/// The peer address as the platform saw it: API Gateway's `sourceIp` on
/// Lambda, the TCP peer locally. `X-Forwarded-For` is never trusted: anyone
/// can send it.
fn client_ip(extensions: &Extensions) -> Option<IpAddr> {
    match extensions.get::<lambda_http::request::RequestContext>() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            return ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
        }
        Some(lambda_http::request::RequestContext::ApiGatewayV1(ctx)) => {
            return ctx.identity.source_ip.as_deref().and_then(|ip| ip.parse().ok());
        }
        _ => {}
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientMeta::from_parts(parts))
    }
}
