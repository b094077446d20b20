//! Bearer-token authentication of devices, and enrollment.

use actix_web::HttpRequest;
use chrono::{SecondsFormat, Utc};
use kiemtra_store::{DeviceRecord, EnrollmentRefusal, Store};

use crate::problem::Problem;
use crate::secrets;

/// The current time as stored (RFC 3339, UTC, seconds).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The bearer token of a request, if it carries one.
pub fn bearer(req: &HttpRequest) -> Result<String, Problem> {
    let header = req
        .headers()
        .get("Authorization")
        .ok_or(Problem::Unauthenticated)?
        .to_str()
        .map_err(|_| Problem::BadCredentials)?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or(Problem::Unauthenticated)?
        .trim();
    if token.is_empty() || token.len() > 256 {
        return Err(Problem::BadCredentials);
    }
    Ok(token.to_owned())
}

/// The enrolled, unrevoked device holding `token`. Looked up on every
/// request, so a revocation takes effect on the next one.
pub fn device(store: &Store, token: &str) -> Result<DeviceRecord, Problem> {
    let record = store
        .device_by_token(&secrets::sha256(token))
        .map_err(|e| Problem::Internal(e.to_string()))?
        .ok_or(Problem::BadCredentials)?;
    if record.revoked_at.is_some() {
        return Err(Problem::Revoked);
    }
    Ok(record)
}

/// The roles a device's user can have.
pub const ROLES: [&str; 4] = ["inspector", "supervisor", "auditor", "administrator"];

/// Creates a single-use enrollment code valid for `ttl`; returns the code.
/// Only its digest is stored.
pub fn create_enrollment_code(
    store: &mut Store,
    user: &str,
    team: &str,
    role: &str,
    ttl: chrono::Duration,
) -> Result<String, Problem> {
    kiemtra_core::UserId::parse(user).map_err(|e| Problem::BadRequest(e.to_string()))?;
    kiemtra_core::TeamId::parse(team).map_err(|e| Problem::BadRequest(e.to_string()))?;
    if !ROLES.contains(&role) {
        return Err(Problem::BadRequest(format!(
            "unknown role {role:?}; one of {}",
            ROLES.join(", ")
        )));
    }
    if ttl <= chrono::Duration::zero() {
        return Err(Problem::BadRequest(
            "the code must be valid for some time".into(),
        ));
    }
    let code = secrets::new_code()?;
    let created = Utc::now();
    store
        .create_enrollment_code(
            &secrets::sha256(&secrets::normalise_code(&code)),
            user,
            team,
            role,
            &created.to_rfc3339_opts(SecondsFormat::Secs, true),
            &(created + ttl).to_rfc3339_opts(SecondsFormat::Secs, true),
        )
        .map_err(|e| Problem::Internal(e.to_string()))?;
    Ok(code)
}

/// Redeems an enrollment code: a new device id and bearer token.
pub fn enroll(
    store: &mut Store,
    code: &str,
    device_name: &str,
    public_key: &str,
) -> Result<(DeviceRecord, String), Problem> {
    let key = kiemtra_core::hex::decode(public_key).filter(|k| k.len() == 32);
    let Some(public_key) = key else {
        return Err(Problem::BadRequest(
            "public_key must be an Ed25519 public key: 64 hex characters".into(),
        ));
    };
    let name = device_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Problem::BadRequest(
            "device_name must be 1 to 100 characters".into(),
        ));
    }
    let token = secrets::new_token()?;
    let device_id = secrets::new_device_id()?;
    let outcome = store
        .redeem_enrollment_code(
            &secrets::sha256(&secrets::normalise_code(code)),
            &now(),
            &device_id,
            name,
            &secrets::sha256(&token),
            &public_key,
        )
        .map_err(|e| Problem::Internal(e.to_string()))?;
    match outcome {
        Ok(record) => Ok((record, token)),
        Err(EnrollmentRefusal::Unknown) => Err(Problem::Enrollment("unknown code")),
        Err(EnrollmentRefusal::Used) => Err(Problem::Enrollment("this code has already been used")),
        Err(EnrollmentRefusal::Expired) => Err(Problem::Enrollment("this code has expired")),
    }
}
