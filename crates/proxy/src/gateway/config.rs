//! The `warden serve` configuration file (placeholder; being written).
