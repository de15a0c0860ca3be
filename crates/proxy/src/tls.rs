//! TLS for the HTTP listener (placeholder; being written).
