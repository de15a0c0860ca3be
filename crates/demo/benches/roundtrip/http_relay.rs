//! The floor of an added HTTP hop: with `ROUNDTRIP_HTTP_RELAY` set to
//! `<port>,<upstream URL>`, this bench binary listens on 127.0.0.1:<port>
//! and passes every request to the upstream URL (method, body and the MCP
//! transport's headers) with one pooled client, then streams the answer
//! back as it comes (status, content type, session id, the body chunk by
//! chunk). No parsing, no policy, no log. It is built of warden's own HTTP
//! parts (axum and hyper as the server, reqwest as the client, TCP_NODELAY
//! both ways) on a multi-threaded runtime with one worker per core, as
//! `warden proxy --listen` runs by default; what warden adds over this row
//! is warden's own work.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;

/// Request headers passed on: those the MCP Streamable HTTP transport uses.
const REQUEST_HEADERS: [&str; 5] = [
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];
/// Answer headers passed back.
const ANSWER_HEADERS: [&str; 2] = ["content-type", "mcp-session-id"];

/// Runs the relay `spec` (`<port>,<upstream URL>`); returns its exit code.
pub fn run(spec: &str) -> i32 {
    let Some((port, url)) = spec
        .split_once(',')
        .and_then(|(p, u)| Some((p.parse::<u16>().ok()?, u.to_string())))
    else {
        eprintln!("ROUNDTRIP_HTTP_RELAY={spec}: want <port>,<upstream URL>");
        return 2;
    };
    let served = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(serve(port, url)).map_err(|e| e.to_string()));
    match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ROUNDTRIP_HTTP_RELAY: {e}");
            1
        }
    }
}

async fn serve(port: u16, url: String) -> std::io::Result<()> {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    let app = axum::Router::new().fallback(move |req: Request| {
        let (client, url) = (client.clone(), url.clone());
        // The accept loop and every request on a worker, not on the main
        // thread that `block_on` runs.
        async move { forward(&client, &url, req).await }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await?
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tokio::spawn(async move { axum::serve(listener, app).await })
        .await
        .map_err(std::io::Error::other)?
}

async fn forward(client: &reqwest::Client, url: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut up = client.request(parts.method, url).body(body);
    for name in REQUEST_HEADERS {
        if let Some(v) = parts.headers.get(name) {
            up = up.header(name, v);
        }
    }
    let answer = match up.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(answer.status());
    for name in ANSWER_HEADERS {
        if let Some(v) = answer.headers().get(name) {
            out = out.header(name, v);
        }
    }
    let chunks = futures::stream::unfold(answer, |mut answer| async move {
        match answer.chunk().await {
            Ok(Some(bytes)) => Some((Ok::<_, reqwest::Error>(bytes), answer)),
            Ok(None) | Err(_) => None,
        }
    });
    out.body(Body::from_stream(chunks))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
