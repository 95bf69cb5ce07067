//! `lambda-router`: the glue of the full local AWS run.
//!
//! moto runs the real state machine and, for every Lambda task, calls the Lambda Invoke API on
//! its own port (`MOTO_PORT`). This router listens on that port:
//! - `POST /2015-03-31/functions/<name or ARN>/invocations` goes to `cargo lambda watch`, which
//!   runs the real function binary; the function name is the last `:`-separated part of the
//!   ARN (so `arn:aws:lambda:…:function:validate` runs the `validate` binary; a name that
//!   CloudFormation generated from the template, `<stack>-ValidateFunction-<id>`, runs the
//!   stage its logical id names). A handler error
//!   comes back from watch as HTTP 500; Lambda reports it as HTTP 200 with
//!   `X-Amz-Function-Error: Unhandled`, which is what Step Functions' Retry/Catch expect, so the
//!   router translates.
//! - every other request goes to moto unchanged, so clients can use the router as their single
//!   `AWS_ENDPOINT_URL`.
//!
//! With `--latency FILE` every forwarded call first waits for a delay drawn from that call's
//! distribution in the profile ([`latency`]), for load runs under realistic AWS latency.
//!
//! It binds loopback only.

mod latency;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// Routes Lambda invocations to `cargo lambda watch` and everything else to moto.
#[derive(Debug, Parser)]
#[command(name = "lambda-router", version, about)]
struct Args {
    /// Port to listen on (127.0.0.1): moto's `MOTO_PORT`.
    #[arg(long)]
    port: u16,
    /// moto's own port on 127.0.0.1.
    #[arg(long)]
    moto_port: u16,
    /// `cargo lambda watch`'s port on 127.0.0.1.
    #[arg(long)]
    watch_port: u16,
    /// A latency profile (JSON, see `bench/latency/aws-us-east-1.json`): each call waits for a
    /// draw from its distribution before it is forwarded.
    #[arg(long, env = "LAMBDA_ROUTER_LATENCY")]
    latency: Option<std::path::PathBuf>,
}

/// What can go wrong while forwarding one request.
#[derive(Debug, thiserror::Error)]
enum RouteError {
    #[error("reading the request body: {0}")]
    Body(#[from] hyper::Error),
    #[error("forwarding to {target}: {source}")]
    Forward {
        target: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("building the forwarded request: {0}")]
    Build(#[from] hyper::http::Error),
}

struct Router {
    client: Client<HttpConnector, Full<Bytes>>,
    moto: u16,
    watch: u16,
    latency: Option<latency::Profile>,
}

/// The binary name for an Invoke path, if the path is an Invoke call.
fn function_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/2015-03-31/functions/")?;
    let name = rest.strip_suffix("/invocations")?;
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    // `arn:aws:lambda:region:account:function:NAME[:QUALIFIER]` or a plain name.
    let parts: Vec<&str> = name.split(':').collect();
    let fname = match parts.iter().position(|p| *p == "function") {
        Some(i) => parts.get(i + 1).copied().unwrap_or_default(),
        None => parts.first().copied().unwrap_or_default(),
    };
    (!fname.is_empty()).then(|| binary_of(fname))
}

/// The binary a function name runs: the name itself, or for a name CloudFormation generated
/// from the template's logical id (`<stack>-ValidateFunction-1A2B3C`), that id's stage.
fn binary_of(function: &str) -> String {
    let Some((before, _suffix)) = function.rsplit_once("Function-") else {
        return function.to_owned();
    };
    let logical = before.rsplit('-').next().unwrap_or(before);
    if logical.is_empty() {
        return function.to_owned();
    }
    logical.to_lowercase()
}

impl Router {
    async fn route(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, RouteError> {
        let (mut parts, body) = req.into_parts();
        let body = body.collect().await?.to_bytes();
        let invoke = function_of(parts.uri.path());
        let (port, path) = match &invoke {
            Some(f) => (self.watch, format!("/2015-03-31/functions/{f}/invocations")),
            None => (
                self.moto,
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
            ),
        };
        if let Some(profile) = &self.latency {
            let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
            let call = latency::call_of(
                invoke.is_some(),
                header("x-amz-target"),
                header("authorization"),
            );
            let delay = profile.delay(&call);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        let target = format!("http://127.0.0.1:{port}{path}");
        parts.uri = target.parse::<Uri>().map_err(hyper::http::Error::from)?;
        // Keep the client's Host header for moto: its signature checks and URLs use it.
        if invoke.is_some() {
            parts.headers.insert(
                HOST,
                HeaderValue::from_str(&format!("127.0.0.1:{port}"))
                    .map_err(hyper::http::Error::from)?,
            );
        }
        let resp = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|source| RouteError::Forward {
                target: target.clone(),
                source,
            })?;
        let (mut parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        if invoke.is_some() {
            parts.headers.insert(
                "x-amz-executed-version",
                HeaderValue::from_static("$LATEST"),
            );
            if parts.status == StatusCode::INTERNAL_SERVER_ERROR {
                parts.status = StatusCode::OK;
                parts.headers.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            }
        }
        Ok(Response::from_parts(parts, Full::new(body)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr).await?;
    let latency = match &args.latency {
        Some(path) => Some(latency::Profile::load(path)?),
        None => None,
    };
    if let Some(path) = &args.latency {
        eprintln!("lambda-router: latency profile {}", path.display());
    }
    let router = Arc::new(Router {
        client: Client::builder(TokioExecutor::new()).build_http(),
        moto: args.moto_port,
        watch: args.watch_port,
        latency,
    });
    eprintln!(
        "lambda-router: 127.0.0.1:{} → Lambda invocations to :{}, everything else to :{}",
        args.port, args.watch_port, args.moto_port
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let router = router.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let router = router.clone();
                async move {
                    Ok::<_, Infallible>(match router.route(req).await {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("lambda-router: {e}");
                            let mut r = Response::new(Full::new(Bytes::from(e.to_string())));
                            *r.status_mut() = StatusCode::BAD_GATEWAY;
                            r
                        }
                    })
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                eprintln!("lambda-router: connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::function_of;

    #[test]
    fn invoke_paths_map_to_binaries() {
        assert_eq!(
            function_of("/2015-03-31/functions/validate/invocations").as_deref(),
            Some("validate")
        );
        assert_eq!(
            function_of("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aenrich/invocations")
                .as_deref(),
            Some("enrich")
        );
        assert_eq!(
            function_of("/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:persist:$LATEST/invocations").as_deref(),
            Some("persist")
        );
        // Created from template.yaml's stack (scripts/rehearse_deploy.py): named by CloudFormation.
        assert_eq!(
            function_of("/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:pipeline-local-ValidateFunction-XBWTYNMZ833B/invocations")
                .as_deref(),
            Some("validate")
        );
        assert_eq!(function_of("/2015-03-31/functions/validate"), None);
        assert_eq!(function_of("/"), None);
    }
}
