//! `warden serve --config FILE`: the gateway (placeholder; being written).

use crate::exit;
use clap::Args;
use std::path::PathBuf;

/// `warden serve` arguments.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; see docs/config.md).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: ServeArgs) -> i32 {
    eprintln!("error: `warden serve` is not built yet ({})", args.config.display());
    exit::USAGE
}
