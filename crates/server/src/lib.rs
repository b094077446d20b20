#![doc = include_str!("../README.md")]

pub mod admin;
mod admin_routes;
pub mod admission;
mod auth;
pub mod backend;
mod console;
mod console_acts;
mod console_admin;
mod console_replay;
pub mod engine;
mod evidence;
pub mod metrics;
mod openapi;
mod options;
pub mod pg;
mod problem;
mod report_routes;
mod routes;
mod secrets;
mod startup;
pub mod storage;
mod trust;
mod verify;

pub use auth::{ROLES, create_enrollment_code, enroll, now, printable, printable_lines};
pub use engine::{decode_request, exchange};
pub use metrics::Metrics;
pub use options::{ServeOptions, init_logging, serve};
pub use pg::{FeedListener, PgStore};
pub use problem::Problem;
pub use secrets::{new_code, normalise_code};
pub use startup::{Application, Settings, StartError, open_backend, open_store};
pub use storage::ServerStore;
pub use verify::{Problem as VerifyProblem, Report as VerifyReport, verify_visit};
