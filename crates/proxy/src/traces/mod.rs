//! OpenTelemetry traces of governed calls, off unless an OTLP endpoint is
//! configured (`--otlp-endpoint`, `[traces] otlp_endpoint`).
//!
//! Each governed `tools/call` is one SERVER span, continued from the W3C
//! trace context the client sent (`_meta.traceparent`, or on HTTP the
//! `traceparent` header), with a child span per decision, the wait for the
//! person's confirmation, and the upstream call (a CLIENT span, whose
//! context goes upstream in `_meta` and, to an HTTP upstream, in the
//! `traceparent` header). Spans carry what was decided (rule, outcome,
//! decision id, policy version), never argument values unless the operator
//! names arguments to record ([`TraceSettings::arguments`]), and then in
//! the form the decision log writes them (redacted, bounded).
//!
//! Spans are exported in batches over OTLP/HTTP (protobuf) from the SDK's
//! own thread: a slow or absent collector delays nothing and fails no
//! call (spans past the queue are dropped, and the SDK says so on
//! stderr). Traces are telemetry, not the record: the decision log is.
//! Every span and attribute is listed in docs/observability.md.
//!
//! `context` reads and writes the W3C trace context in `_meta` and
//! headers; `call` holds the spans of one call.

mod call;
mod context;

pub(crate) use call::{CallTrace, UpstreamSpan};
pub(crate) use context::{fold_header_into_meta, header_pairs};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The path OTLP/HTTP collectors take traces at, appended to the
/// configured endpoint as `OTEL_EXPORTER_OTLP_ENDPOINT` is.
pub const TRACES_PATH: &str = "v1/traces";

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the shutdown waits for the last spans to go out.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator configured.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`);
    /// spans go to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// The share of new traces recorded, 0.0 to 1.0; a call continuing a
    /// client's trace follows the client's sampled flag.
    pub sample_ratio: f64,
    /// Top-level argument names whose values go on the call's span (as
    /// `warden.argument.<name>`), as the decision log writes them.
    pub arguments: Vec<String>,
    /// `service.instance.id` (the replica), when known.
    pub instance: Option<String>,
}

impl TraceSettings {
    /// Traces to `endpoint`, every new trace recorded, no arguments.
    pub fn new(endpoint: impl Into<String>) -> Self {
        TraceSettings {
            endpoint: endpoint.into(),
            sample_ratio: 1.0,
            arguments: Vec::new(),
            instance: None,
        }
    }
}

/// Why traces could not be started.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TraceError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Endpoint(EndpointError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Exporter(ExporterError),
}

/// The endpoint is not an http(s) URL.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("`{endpoint}` is not an OTLP/HTTP endpoint: {why}")]
#[diagnostic(
    code(warden::traces::endpoint),
    help(
        "give the collector's OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; warden sends to its `/v1/traces`"
    )
)]
pub struct EndpointError {
    endpoint: String,
    why: String,
}

/// The SDK refused the exporter.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the OTLP exporter could not be built: {message}")]
#[diagnostic(code(warden::traces::exporter))]
pub struct ExporterError {
    message: String,
}

/// The process's tracer: one per process, shared by every relay.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    arguments: Vec<String>,
}

impl fmt::Debug for Traces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traces")
            .field("arguments", &self.arguments)
            .finish_non_exhaustive()
    }
}

impl Traces {
    /// Starts the exporter (its own thread; nothing is sent until spans
    /// end).
    pub fn start(settings: &TraceSettings) -> Result<Arc<Traces>, TraceError> {
        let url = traces_url(&settings.endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| {
                TraceError::Exporter(ExporterError {
                    message: e.to_string(),
                })
            })?;
        let mut resource = Resource::builder();
        // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (read by the
        // builder's detectors) win over warden's default name.
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("warden");
        }
        resource =
            resource.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if let Some(instance) = &settings.instance {
            resource =
                resource.with_attribute(KeyValue::new("service.instance.id", instance.clone()));
        }
        let ratio = settings.sample_ratio.clamp(0.0, 1.0);
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer("warden");
        Ok(Arc::new(Traces {
            provider,
            tracer,
            arguments: settings.arguments.clone(),
        }))
    }

    /// Sends the spans still queued and stops the exporter (at most a few
    /// seconds). Blocks: call it off the runtime's workers.
    pub fn shutdown(&self) -> Result<(), String> {
        self.provider
            .shutdown_with_timeout(SHUTDOWN_TIMEOUT)
            .map_err(|e| e.to_string())
    }
}

/// `<endpoint>/v1/traces`, after checking the endpoint is an http(s) URL.
fn traces_url(endpoint: &str) -> Result<String, TraceError> {
    let url = check_endpoint(endpoint).map_err(|why| {
        TraceError::Endpoint(EndpointError {
            endpoint: endpoint.to_string(),
            why,
        })
    })?;
    let base = url.as_str().trim_end_matches('/');
    Ok(format!("{base}/{TRACES_PATH}"))
}

/// Whether `endpoint` can be a collector's OTLP/HTTP base URL: http or
/// https, a host, no query or fragment. The error says why not.
pub fn check_endpoint(endpoint: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https".to_string());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("it names no host".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a query or a fragment".to_string());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_to_the_endpoint() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://otel.example/collector/").unwrap(),
            "https://otel.example/collector/v1/traces"
        );
        for bad in [
            "127.0.0.1:4318",
            "ftp://x/",
            "http://h/?a=1",
            "not a url",
            "mailto:ops@example.com",
            "http://h/#frag",
        ] {
            assert!(
                matches!(traces_url(bad), Err(TraceError::Endpoint(_))),
                "{bad}"
            );
        }
    }
}
