//! `GET /approvals/<id>?s=SECRET` (the page) and `POST /approvals/<id>`
//! (a decision: the secret, the CSRF token, approve or refuse, a note, and
//! with bearer auth the approver's token), on warden's HTTP listener.

use super::page::{CSP, approval_page, message_page};
use super::{Approvals, Refusal};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// The longest note kept.
const MAX_NOTE_CHARS: usize = 500;

/// The routes, to merge into a listener's router.
pub(crate) fn router(approvals: Arc<Approvals>) -> axum::Router {
    axum::Router::new()
        .route("/approvals/{id}", axum::routing::get(show).post(decide))
        .with_state(approvals)
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    s: String,
}

#[derive(Deserialize)]
struct Decision {
    #[serde(default)]
    s: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    token: Option<String>,
}

/// An HTML answer with the page's headers: strict CSP, no framing, no
/// caching, no referrer (the URL holds the link's secret).
fn html(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn refused(r: Refusal) -> Response {
    let (status, title, text) = match r {
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "No such approval",
            "this link does not name an approval warden holds (check that it was copied whole)"
                .to_string(),
        ),
        Refusal::Expired => (
            StatusCode::GONE,
            "This approval has expired",
            "the agent must make the call again to ask for a new approval".to_string(),
        ),
        Refusal::AlreadyDecided => (
            StatusCode::CONFLICT,
            "Already decided",
            "this approval was already given or refused; a link works once".to_string(),
        ),
        Refusal::BadForm => (
            StatusCode::FORBIDDEN,
            "The form is not this approval's",
            "open the link again and decide on the page it shows".to_string(),
        ),
        Refusal::NotAllowed(why) => (StatusCode::FORBIDDEN, "Not allowed", why),
    };
    html(status, message_page(title, &text))
}

async fn show(
    State(a): State<Arc<Approvals>>,
    Path(id): Path<String>,
    Query(link): Query<Link>,
) -> Response {
    match a.get(&id, &link.s) {
        Ok(p) => html(
            StatusCode::OK,
            approval_page(&p, &id, &link.s, a.authenticates()),
        ),
        Err(r) => refused(r),
    }
}

async fn decide(
    State(a): State<Arc<Approvals>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(d): Form<Decision>,
) -> Response {
    // A form posted from another site: refused before anything is read.
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && origin != "null"
        && origin.trim_end_matches('/') != a.base
    {
        return refused(Refusal::BadForm);
    }
    let approve = match d.action.as_str() {
        "approve" => true,
        "refuse" => false,
        _ => return refused(Refusal::BadForm),
    };
    let note: String = d.note.chars().take(MAX_NOTE_CHARS).collect();
    let decided = {
        let a = Arc::clone(&a);
        let id = id.clone();
        // Token checks and the state store may block: off the workers.
        tokio::task::spawn_blocking(move || {
            a.decide(&id, &d.s, &d.csrf, d.token.as_deref(), approve, &note)
                .map(|by| (by, d.s))
        })
        .await
    };
    match decided {
        Ok(Ok((_, secret))) => match a.get(&id, &secret) {
            Ok(p) => html(
                StatusCode::OK,
                approval_page(&p, &id, &secret, a.authenticates()),
            ),
            Err(r) => refused(r),
        },
        Ok(Err(r)) => refused(r),
        Err(_) => refused(Refusal::NotAllowed(
            "warden failed to record the decision".into(),
        )),
    }
}
