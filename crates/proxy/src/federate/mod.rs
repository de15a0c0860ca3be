//! The federated `/mcp` endpoint: one client session in front of several
//! governed upstream links (placeholder; being written).
