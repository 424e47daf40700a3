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

    /// The rate-limit key for an anonymous caller: the IPv4 address, or the
    /// IPv6 /64 (one subscriber's network: a client picks any address in it).
    pub fn ip_key(&self) -> String {
        match self.ip.map(canonical) {
            Some(IpAddr::V6(v6)) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
            Some(v4) => v4.to_string(),
            None => "unknown".into(),
        }
    }
}

/// An IPv4 client seen through an IPv4-mapped IPv6 address is that IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        ClientMeta { ip: Some(ip.parse().unwrap()), user_agent: None }.ip_key()
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), key("2001:db8:1:2::5"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ClientMeta { ip: None, user_agent: None }.ip_key(), "unknown");
    }
}
