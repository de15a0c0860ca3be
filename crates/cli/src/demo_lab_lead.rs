//! The demo's people other than the agent's user: a token issuer for the
//! demo (a fresh Ed25519 key per run, whose public half `warden proxy`
//! trusts with `--jwt-key`), and a person who opens the link of a pending
//! approval on warden's approval page and approves it there with their
//! access token, as a browser's form would post it.

use std::path::{Path, PathBuf};

type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// The `iss` and `aud` of the demo's tokens.
pub(crate) const ISSUER: &str = "https://auth.genomics.example";
pub(crate) const AUDIENCE: &str = "https://warden.genomics.example/mcp";

/// The demo's identity provider: signs access tokens for its people.
pub(crate) struct DemoIssuer {
    key: jsonwebtoken::EncodingKey,
    public_pem: PathBuf,
}

impl DemoIssuer {
    /// A new key pair; the public key is written to `dir` for warden.
    pub(crate) fn create(dir: &Path) -> Result<DemoIssuer, DemoError> {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no random source: {e}"))?;
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let private = signing.to_pkcs8_pem(LineEnding::LF)?;
        let public_pem = dir.join("demo-issuer.pub");
        std::fs::write(
            &public_pem,
            signing.verifying_key().to_public_key_pem(LineEnding::LF)?,
        )?;
        Ok(DemoIssuer {
            key: jsonwebtoken::EncodingKey::from_ed_pem(private.as_bytes())?,
            public_pem,
        })
    }

    /// The file warden reads the issuer's public key from.
    pub(crate) fn public_key_file(&self) -> &Path {
        &self.public_pem
    }

    /// An access token for `user` in `groups`, valid for ten minutes.
    pub(crate) fn token(&self, user: &str, groups: &[&str]) -> Result<String, DemoError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": user, "groups": groups,
            "iat": now, "exp": now + 600,
        });
        Ok(jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
            &claims,
            &self.key,
        )?)
    }
}

/// What the page answered a person's approval: its status line, and
/// whether the approval was taken.
pub(crate) struct PageAnswer {
    pub(crate) approved: bool,
    pub(crate) message: String,
}

/// Opens `link` (the approval page of one pending approval, with its
/// secret) and approves it with `token` and `note`, as the page's form
/// posts it: the secret, the page's CSRF token, the action, the access
/// token and the note.
pub(crate) async fn approve_on_page(
    link: &str,
    token: &str,
    note: &str,
) -> Result<PageAnswer, DemoError> {
    let http = reqwest::Client::new();
    let page = http
        .get(link)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let csrf = hidden_field(&page, "csrf").ok_or("the approval page has no CSRF token")?;
    let (path, secret) = link
        .split_once("?s=")
        .ok_or("the approval link has no secret")?;
    let answer = http
        .post(path)
        .form(&[
            ("s", secret),
            ("csrf", csrf.as_str()),
            ("action", "approve"),
            ("token", token),
            ("note", note),
        ])
        .send()
        .await?;
    let approved = answer.status().is_success();
    let body = answer.text().await?;
    Ok(PageAnswer {
        approved,
        message: page_message(&body),
    })
}

/// The value of the hidden form field `name` on the page.
fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker)? + marker.len();
    Some(page[at..].split('"').next()?.to_string())
}

/// The page's message to the person: its status paragraph, as text.
fn page_message(body: &str) -> String {
    const STATUS: &str = "id=\"status\">";
    let Some(start) = body.find(STATUS) else {
        return "(no reason shown)".into();
    };
    let text = body[start + STATUS.len()..]
        .split("</p>")
        .next()
        .unwrap_or_default();
    // The page escapes what it shows (approvals::page::escape).
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The approval link in a denial's advice: its first `http(s)://` word.
pub(crate) fn link_in(advice: &str) -> Option<&str> {
    advice
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
}
