#![doc = include_str!("../README.md")]

mod auth;
mod engine;
mod evidence;
mod metrics;
mod options;
mod problem;
mod routes;
mod secrets;
mod startup;
mod trust;
mod verify;

pub use auth::{ROLES, create_enrollment_code, now, printable, printable_lines};
pub use options::{ServeOptions, init_logging, serve};
pub use problem::Problem;
pub use startup::{Application, Settings, StartError, open_store};
pub use verify::{Problem as VerifyProblem, Report as VerifyReport, verify_visit};
