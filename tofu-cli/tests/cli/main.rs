//! The `tofu-certs` binary, run for real against real stores in a hermetic environment
//! (cleared environment, temporary HOME, `--store` in a temporary directory), and against real
//! `openssl s_server` processes on loopback ports.

mod awaited;
mod changes;
mod check;
mod completions;
mod concurrency;
mod export;
mod hostile_text;
mod interface;
mod json;
mod listing;
mod man;
mod probe;
mod snapshots;
mod status;
mod util;
