//! What the client transports talk to (placeholder; being written).
