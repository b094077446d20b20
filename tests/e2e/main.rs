//! End-to-end scenarios: the real `kiemtra-server` binary, several device
//! stores, faults. Run with `cargo test --workspace` (or `-p kiemtra-server --test e2e`).

mod admin;
mod audit;
mod backup;
mod bad_input;
mod bounds;
mod browser;
mod bundle;
mod concurrency;
mod console;
mod continuation;
mod cost;
mod enrollment;
mod evidence;
mod faults;
#[allow(dead_code)]
mod harness;
mod hostile;
mod merge;
mod operations;
mod overload;
mod postgres;
mod received;
mod trust;
