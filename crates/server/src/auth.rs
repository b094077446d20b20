//! Bearer-token authentication of devices, and enrollment.

use crate::storage::ServerStore;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use kiemtra_store::{DeviceRecord, EnrollmentRefusal};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
pub fn device(store: &mut impl ServerStore, token: &str) -> Result<DeviceRecord, Problem> {
    let record = store
        .device_by_token(&secrets::sha256(token))
        .map_err(Problem::from)?
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
    store: &mut impl ServerStore,
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
    let hash = secrets::sha256(&secrets::normalise_code(&code));
    let expires = (created + ttl).to_rfc3339_opts(SecondsFormat::Secs, true);
    store
        .create_enrollment_code(
            &hash,
            user,
            team,
            role,
            &created.to_rfc3339_opts(SecondsFormat::Secs, true),
            &expires,
        )
        .map_err(Problem::from)?;
    // Logged as issued on the server machine (no administrator signed it).
    let act = kiemtra_admin::Act::CodeIssued {
        code_hash: kiemtra_core::hex::encode(&hash),
        user_id: kiemtra_core::UserId::parse(user)
            .map_err(|e| Problem::BadRequest(e.to_string()))?,
        team_id: kiemtra_core::TeamId::parse(team)
            .map_err(|e| Problem::BadRequest(e.to_string()))?,
        role: kiemtra_core::Role::parse(role).map_err(|e| Problem::BadRequest(e.to_string()))?,
        expires_at: expires,
    };
    if let Err(r) = crate::admin::witness(store, act, None)? {
        tracing::warn!(reason = %r, "the code was not logged");
    }
    Ok(code)
}

/// The device's Ed25519 public key from its hex form: 32 bytes that encode,
/// canonically, a point of the curve that is not of small order. The
/// all-zero key and the other small-order points are refused: a signature
/// "by" such a key can be forged without any private key.
pub fn public_key(hex: &str) -> Result<[u8; 32], Problem> {
    let bytes = kiemtra_core::hex::decode(hex)
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| {
            Problem::BadRequest(
                "public_key must be an Ed25519 public key: 64 hex characters".into(),
            )
        })?;
    let compressed = curve25519_dalek::edwards::CompressedEdwardsY(bytes);
    let point = compressed.decompress().ok_or_else(|| {
        Problem::BadRequest(
            "public_key is not an Ed25519 public key: its 32 bytes are not a point of the curve"
                .into(),
        )
    })?;
    if point.compress() != compressed {
        return Err(Problem::BadRequest(
            "public_key is not an Ed25519 public key in canonical form".into(),
        ));
    }
    if point.is_small_order() {
        return Err(Problem::BadRequest(
            "public_key is a weak Ed25519 key (a point of small order, such as all zeros): \
             make the key with a real Ed25519 key generator"
                .into(),
        ));
    }
    Ok(bytes)
}

/// Redeems an enrollment code: the device and its new bearer token, and
/// whether this was a retry of an enrollment whose answer was lost (the
/// same code and public key again: the same device, a fresh token, the
/// earlier token no longer valid; see `Store::redeem_enrollment_code`).
pub fn enroll(
    store: &mut impl ServerStore,
    code: &str,
    device_name: &str,
    public_key: &str,
) -> Result<(DeviceRecord, String, bool), Problem> {
    let public_key = self::public_key(public_key)?;
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
        .map_err(Problem::from)?;
    match outcome {
        Ok((record, retry)) => {
            if !retry {
                log_enrollment(store, &record, code)?;
            }
            Ok((record, token, retry))
        }
        Err(EnrollmentRefusal::Unknown) => Err(Problem::Enrollment("unknown code")),
        Err(EnrollmentRefusal::Used) => Err(Problem::Enrollment("this code has already been used")),
        Err(EnrollmentRefusal::Expired) => Err(Problem::Enrollment("this code has expired")),
    }
}

/// Logs an enrollment the server witnessed. A code the log never issued
/// (a database older than the log, or a row added by hand) enrolls without
/// an entry; the device check then reports the device as not in the log.
fn log_enrollment(
    store: &mut impl ServerStore,
    record: &DeviceRecord,
    code: &str,
) -> Result<(), Problem> {
    let parse = |e: kiemtra_core::Error| Problem::Internal(e.to_string());
    let act = kiemtra_admin::Act::DeviceEnrolled {
        device_id: record.device_id.clone(),
        user_id: kiemtra_core::UserId::parse(&record.user_id).map_err(parse)?,
        team_id: kiemtra_core::TeamId::parse(&record.team).map_err(parse)?,
        role: kiemtra_core::Role::parse(&record.role).map_err(parse)?,
        public_key: kiemtra_core::hex::encode(&record.public_key),
        device_name: record.name.clone(),
        code_hash: kiemtra_core::hex::encode(&secrets::sha256(&secrets::normalise_code(code))),
    };
    if let Err(r) = crate::admin::witness(store, act, Some(record.enrolled_at.clone()))? {
        tracing::warn!(device = %record.device_id, reason = %r, "the enrollment was not logged");
    }
    Ok(())
}

/// Failed enrollment attempts one client address may make in
/// [`FAILURE_WINDOW`]; past that its attempts are refused (429) without
/// reading their body or the database until the oldest failure leaves the
/// window.
pub const FAILURES_ALLOWED: usize = 10;
/// The window failed attempts are counted over.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at once; past that the
/// address whose last failure is oldest is forgotten (the table stays
/// small whatever a distributed guesser sends).
const ADDRESSES_KEPT: usize = 10_000;

/// Failed enrollment attempts by client address (an IPv6 client by its
/// /64, which one host usually holds whole).
#[derive(Default)]
pub struct EnrollLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// The address a client is counted under.
pub fn client_key(addr: Option<std::net::SocketAddr>) -> IpAddr {
    match addr.map(|a| a.ip()) {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl EnrollLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(wait)` when `client` has used up its failures at `now`: how
    /// long until it may try again.
    pub fn refused(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        let list = map.get_mut(&client)?;
        while list
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW)
        {
            list.pop_front();
        }
        if list.is_empty() {
            map.remove(&client);
            return None;
        }
        (list.len() >= FAILURES_ALLOWED).then(|| {
            let oldest = list.front().copied().unwrap_or(now);
            FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(oldest))
        })
    }

    /// Counts a failed attempt of `client` at `now`.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        let mut map = self.lock();
        if !map.contains_key(&client) && map.len() >= ADDRESSES_KEPT {
            map.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < FAILURE_WINDOW)
            });
            if map.len() >= ADDRESSES_KEPT {
                let stalest = map
                    .iter()
                    .min_by_key(|(_, l)| l.back().copied())
                    .map(|(k, _)| *k);
                if let Some(k) = stalest {
                    map.remove(&k);
                }
            }
        }
        let list = map.entry(client).or_default();
        list.push_back(now);
        // Only the newest failures matter for the limit.
        while list.len() > FAILURES_ALLOWED {
            list.pop_front();
        }
    }

    /// Addresses with failures remembered.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// The answer to a client past its failed attempts: 429, problem+json,
/// with `Retry-After` in whole seconds (at least 1).
pub fn too_many_attempts(wait: Duration) -> HttpResponse {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    HttpResponse::TooManyRequests()
        .content_type("application/problem+json")
        .insert_header(("Retry-After", secs.to_string()))
        .json(serde_json::json!({
            "type": "urn:kiemtra:problem:too-many-attempts",
            "title": "Too many enrollment attempts",
            "status": 429,
            "detail": format!(
                "too many failed enrollment attempts from this address; try again in {secs} s \
                 / quá nhiều lần đăng ký thất bại từ địa chỉ này; thử lại sau {secs} giây"
            ),
        }))
}

/// User-supplied text (a device name, a unit's or person's name, a note)
/// made safe to print on a terminal: control characters, terminal escapes
/// and bidirectional overrides are shown as visible escapes (`\n`, `\t`,
/// `\u{1b}`) and a backslash as `\\`, so what is printed is what was
/// stored and nothing of it acts on the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, false)
}

/// As [`printable`], keeping line breaks and tabs: for text printed as
/// lines (a narrative, a whole report) where they are the layout.
pub fn printable_lines(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, true)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(text: &str, keep_lines: bool) -> std::borrow::Cow<'_, str> {
    let keep = |c: char| keep_lines && matches!(c, '\n' | '\t' | '\\');
    if !text.chars().any(|c| needs_escape(c) && !keep(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            other => out.push_str(&format!("\\u{{{:x}}}", u32::from(other))),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_eleventh_failure_within_a_minute_is_refused_until_the_first_expires() {
        let limiter = EnrollLimiter::default();
        let start = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..FAILURES_ALLOWED {
            assert_eq!(limiter.refused(a, start), None, "attempt {i}");
            limiter.failed(a, start + Duration::from_secs(i as u64));
        }
        let at = start + Duration::from_secs(20);
        assert_eq!(limiter.refused(a, at), Some(Duration::from_secs(40)));
        assert_eq!(
            limiter.refused(ip("192.0.2.2"), at),
            None,
            "another address"
        );
        // The first failure leaves the window: one more attempt.
        let later = start + FAILURE_WINDOW;
        assert_eq!(limiter.refused(a, later), None);
        limiter.failed(a, later);
        assert!(limiter.refused(a, later).is_some());
        // A minute after the last failure, all is forgotten.
        let much_later = later + FAILURE_WINDOW;
        assert_eq!(limiter.refused(a, much_later), None);
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_and_ipv6_prefix() {
        let sock = |s: &str| Some(s.parse::<std::net::SocketAddr>().expect("addr"));
        assert_eq!(client_key(sock("192.0.2.7:5000")), ip("192.0.2.7"));
        assert_eq!(client_key(sock("[::ffff:192.0.2.7]:5000")), ip("192.0.2.7"));
        assert_eq!(
            client_key(sock("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443")),
            client_key(sock("[2001:db8:1:2::9]:80"))
        );
        assert_ne!(
            client_key(sock("[2001:db8:1:2::1]:80")),
            client_key(sock("[2001:db8:1:3::1]:80"))
        );
    }

    #[test]
    fn the_table_of_addresses_stays_bounded() {
        let limiter = EnrollLimiter::default();
        let now = Instant::now();
        for i in 0..(ADDRESSES_KEPT as u32 + 50) {
            limiter.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), now);
        }
        assert_eq!(limiter.tracked(), ADDRESSES_KEPT);
    }

    #[test]
    fn printed_text_shows_escapes_instead_of_acting_on_the_terminal() {
        let name = "Điện thoại\x1b[2J\nfake\tline\r\u{9b}31m\u{202e}evil\\";
        let shown = printable(name);
        assert_eq!(
            shown,
            "Điện thoại\\u{1b}[2J\\nfake\\tline\\r\\u{9b}31m\\u{202e}evil\\\\"
        );
        assert!(!shown.chars().any(char::is_control));
        assert!(matches!(
            printable("Sở Tư pháp"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(printable_lines("a\x1b[2J\nb\tc\\d"), "a\\u{1b}[2J\nb\tc\\d");
    }

    #[test]
    fn weak_and_invalid_public_keys_are_refused() {
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .expect("pkcs8")
                .as_ref(),
        )
        .expect("pair");
        let good = kiemtra_core::hex::encode(ring::signature::KeyPair::public_key(&pair).as_ref());
        assert!(public_key(&good).is_ok(), "a real key is taken");
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // The first small y that is not the y of any point of the curve.
        let not_a_point = (2u8..=255)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| {
                curve25519_dalek::edwards::CompressedEdwardsY(*b)
                    .decompress()
                    .is_none()
            })
            .expect("some small y is off the curve");
        // p + 1 (= 1 mod p), the identity written non-canonically.
        let mut non_canonical = [0xffu8; 32];
        non_canonical[0] = 0xee;
        non_canonical[31] = 0x7f;
        for (bad, why) in [
            ([0u8; 32], "weak"),
            (identity, "weak"),
            (not_a_point, "not a point"),
            (non_canonical, "canonical"),
        ] {
            match public_key(&kiemtra_core::hex::encode(&bad)) {
                Err(Problem::BadRequest(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{bad:?}: expected a bad request, got {other:?}"),
            }
        }
        assert!(public_key("abcd").is_err(), "too short");
        assert!(public_key(&"zz".repeat(32)).is_err(), "not hex");
    }
}
