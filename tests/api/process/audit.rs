//! The audit CLI against the built binary: list, export, verify (and its exit code on a damaged
//! log), checkpoint, on a running and a stopped server.
