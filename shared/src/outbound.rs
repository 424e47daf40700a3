//! One HTTPS client stack for everything mPanel calls out to: reqwest over
//! rustls (HTTP/1.1), lent to the AWS SDK and the ACME client through their
//! own client traits. Their default clients each bring a second hyper
//! client with HTTP/2 and its own TLS set-up, about a megabyte of every
//! function's bootstrap (BENCHMARKS.md, "Size"); AWS's and ACME's endpoints
//! all speak HTTP/1.1, and no call here needs more than one request per
//! connection at a time.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::BodyExt;

/// A reqwest client that trusts what `tls` trusts; `timeout` bounds a whole
/// request when its caller has no deadline of its own.
pub fn client(
    tls: rustls::ClientConfig,
    connect_timeout: Duration,
    timeout: Option<Duration>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().use_preconfigured_tls(tls).connect_timeout(connect_timeout);
    match timeout {
        Some(timeout) => builder.timeout(timeout),
        None => builder,
    }
    .build()
}

/// `client` as the AWS SDK's HTTP client. The SDK's own timeouts (connect,
/// attempt, operation) still bound each call; its read timeout, when set,
/// becomes the request's.
pub fn for_aws_sdk(client: reqwest::Client) -> SharedHttpClient {
    SharedHttpClient::new(SdkHttp { client })
}

#[derive(Debug)]
struct SdkHttp {
    client: reqwest::Client,
}

impl HttpClient for SdkHttp {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector { client: self.client.clone(), read_timeout: settings.read_timeout() })
    }
}

#[derive(Debug)]
struct SdkConnector {
    client: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = request.into_parts();
            // SQS and Secrets Manager requests are small JSON documents held
            // in memory; a streaming upload would need a streaming body.
            let Some(body) = body.bytes().map(Bytes::copy_from_slice) else {
                return Err(ConnectorError::other("streaming request bodies are not supported".into(), None));
            };
            let mut outgoing = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
            if let Some(timeout) = read_timeout {
                outgoing = outgoing.timeout(timeout);
            }
            let response = outgoing.send().await.map_err(sdk_error)?;
            let response: http::Response<reqwest::Body> = response.into();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(sdk_error)?.to_bytes();
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Timeouts and broken connections are the kinds the SDK retries.
fn sdk_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

/// `client` as the ACME client's HTTP client.
pub fn for_acme(client: reqwest::Client) -> Box<dyn instant_acme::HttpClient> {
    Box::new(AcmeHttp { client })
}

struct AcmeHttp {
    client: reqwest::Client,
}

impl instant_acme::HttpClient for AcmeHttp {
    fn request(
        &self,
        request: http::Request<instant_acme::BodyWrapper<Bytes>>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>> + Send>,
    > {
        let client = self.client.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.map_err(|e| instant_acme::Error::Other(e.into()))?.to_bytes();
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(instant_acme::BytesResponse::from(http::Response::<reqwest::Body>::from(response)))
        })
    }
}
