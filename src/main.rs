//! The `warden` binary: everything is in `warden-cli`.

// Deciding a call is allocation-bound inside Cedar: with glibc malloc about
// a third of a decision was malloc/free, and mimalloc cut decide's p50 by
// about 40% (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(warden_cli::run())
}
