//! `warden verify`: checks a provenance token (what `warden proxy
//! --signing-key` puts on each forwarded call) with warden's public key,
//! and optionally that it was issued for a given call. Prints the claims
//! (exit 0) or why the token is not valid (exit 1).

use crate::exit;
use clap::Args;
use std::path::PathBuf;
use warden_proxy::provenance_token::{Expected, VerifyingKey, verify};

/// `warden verify` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  warden verify --key warden.pub --token eyJ...\n  warden verify --key warden.pub --token eyJ... --server genomics --tool update_sample --arguments '{\"id\":\"S-1\"}'"
)]
pub(crate) struct VerifyArgs {
    /// Warden's ed25519 public key (PEM), the pair of its --signing-key.
    #[arg(long, value_name = "PUBLIC.pem")]
    key: PathBuf,
    /// The token (the `io.warden/provenance-token` of a call's `_meta`, or
    /// the `Warden-Provenance-Token` header); `-` reads it from stdin.
    #[arg(long)]
    token: String,
    /// Check that the token is for this server.
    #[arg(long)]
    server: Option<String>,
    /// Check that the token is for this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Check that the token is for these arguments (JSON, as the call
    /// carried them).
    #[arg(long, value_name = "JSON")]
    arguments: Option<String>,
}

pub(crate) fn run(args: VerifyArgs) -> i32 {
    let key = match VerifyingKey::load(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprint!("{}", crate::lint::render_report(&e));
            return exit::USAGE;
        }
    };
    let token = if args.token == "-" {
        let mut s = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            eprintln!("error: cannot read the token from standard input: {e}");
            return exit::USAGE;
        }
        s
    } else {
        args.token.clone()
    };
    let arguments = match args.arguments.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            eprintln!(
                "error: --arguments is not JSON: {e}\n  help: give the call's arguments object, e.g. --arguments '{{\"id\":\"S-1\"}}'"
            );
            return exit::USAGE;
        }
    };
    let expected = Expected {
        server: args.server.as_deref(),
        tool: args.tool.as_deref(),
        arguments: arguments.as_ref(),
    };
    match verify(&token, &key, &expected) {
        Ok(claims) => {
            let text = serde_json::to_string_pretty(&claims).unwrap_or_default();
            outln!("valid provenance token\n{text}");
            exit::OK
        }
        Err(e) => {
            eprintln!("invalid provenance token");
            eprint!("{}", crate::lint::render_report(&e));
            exit::FAILURE
        }
    }
}
