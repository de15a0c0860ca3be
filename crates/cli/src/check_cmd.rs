//! `warden check --config FILE`: validates a `warden serve` configuration
//! without starting anything (placeholder; being written).

use crate::exit;
use clap::Args;
use std::path::PathBuf;

/// `warden check` arguments.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The `warden serve` configuration file to validate.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: CheckArgs) -> i32 {
    eprintln!("error: `warden check` is not built yet ({})", args.config.display());
    exit::USAGE
}
