//! An OTLP/HTTP trace receiver on 127.0.0.1 for tests: it takes what an
//! exporter POSTs to `/v1/traces`, decodes it with the OTLP protobuf types
//! (`opentelemetry-proto`), and keeps every span with its resource.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Res;

/// One received span and the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub instance: String,
    pub span: Span,
}

impl Received {
    /// A string, bool or integer attribute as text; arrays joined by `,`.
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }

    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

pub struct Receiver {
    pub url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    /// Requests that were not OTLP protobuf (wrong path, type or body).
    refused: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub async fn start() -> Res<Receiver> {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let refused: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, r) = (Arc::clone(&spans), Arc::clone(&refused));
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                    let ct = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    if ct != "application/x-protobuf" {
                        r.lock().unwrap().push(format!("content-type {ct}"));
                        return axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
                    }
                    let Ok(req) = ExportTraceServiceRequest::decode(body.as_ref()) else {
                        r.lock().unwrap().push("undecodable body".into());
                        return axum::http::StatusCode::BAD_REQUEST;
                    };
                    let mut out = s.lock().unwrap();
                    for rs in req.resource_spans {
                        let res_attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
                        let service = attr(&res_attrs, "service.name").unwrap_or_default();
                        let instance = attr(&res_attrs, "service.instance.id").unwrap_or_default();
                        for ss in rs.scope_spans {
                            for span in ss.spans {
                                out.push(Received {
                                    service: service.clone(),
                                    instance: instance.clone(),
                                    span,
                                });
                            }
                        }
                    }
                    axum::http::StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver {
            url: format!("http://{addr}"),
            spans,
            refused,
        })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until `n` spans have come (10 s at most), then returns all.
    pub async fn wait_for(&self, n: usize) -> Res<Vec<Received>> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            assert!(
                self.refused.lock().unwrap().is_empty(),
                "the receiver refused: {:?}",
                self.refused.lock().unwrap()
            );
            if spans.len() >= n {
                return Ok(spans);
            }
            if Instant::now() > until {
                return Err(format!(
                    "{} spans received, {n} expected: {:#?}",
                    spans.len(),
                    spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    text(v.value.as_ref()?)
}

fn text(v: &any_value::Value) -> Option<String> {
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        any_value::Value::ArrayValue(a) => a
            .values
            .iter()
            .filter_map(|v| text(v.value.as_ref()?))
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
