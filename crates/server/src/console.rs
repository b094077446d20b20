//! The web console, served by the server on its own port under `/console`:
//! sign-in with a password (argon2id), sessions in cookies, a CSRF token on
//! every form, and the pages that read — campaigns, a campaign's overview
//! with its progress and charts, its report and downloads. Pages are
//! rendered on the server (maud escapes every value), Vietnamese first,
//! English one click away, with Vietnamese numbers and dates.
//!
//! A user gets a password with an enrollment code an administrator issued
//! them (the `code_issued` act of the administration log): the code, the
//! user id it names and a new password set the first password of an
//! account. What a console user may see is decided by the directory as the
//! log builds it: auditors every campaign, supervisors and inspectors the
//! campaigns of their teams (their teams' visits only), administrators the
//! campaigns' plans but no visit contents.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use kiemtra_admin::Directory;
use kiemtra_core::{CampaignId, Lang, Role, UserId, format_count};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

use crate::problem::Problem;
use crate::startup::AppState;
use crate::storage::ServerStore;

const SESSION_COOKIE: &str = "kt_session";
const FORM_COOKIE: &str = "kt_form";
const LANG_COOKIE: &str = "kt_lang";
/// A session lasts this long from sign-in.
const SESSION_HOURS: i64 = 12;
/// Failed sign-ins before an account is locked for a while.
const FREE_FAILURES: u32 = 5;
const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 128;

pub(crate) fn t(lang: Lang, vi: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
}

pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub(crate) fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn lang_of(req: &HttpRequest) -> Lang {
    match req.cookie(LANG_COOKIE).as_ref().map(Cookie::value) {
        Some("en") => Lang::En,
        _ => Lang::Vi,
    }
}

pub(crate) fn random_hex() -> Result<String, Problem> {
    crate::secrets::new_token()
}

fn blocking_err(e: actix_web::error::BlockingError) -> Problem {
    Problem::Internal(e.to_string())
}

pub(crate) async fn with_store<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut crate::backend::Conn<'_>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let st = state.clone();
    web::block(move || {
        let mut store = st.store()?;
        f(&mut store)
    })
    .await
    .map_err(blocking_err)?
}

// ---------------------------------------------------------------- pages

/// A whole page: the shell with the language switch and, when signed in,
/// the user and the sign-out form.
pub(crate) fn page(
    lang: Lang,
    title: &str,
    who: Option<(&Viewer, &str)>,
    body: Markup,
) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang=(t(lang, "vi", "en")) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – kiemtra" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body data-csrf=[who.map(|(_, csrf)| csrf)] data-keys=[who.map(|(v, _)| keys_attr(v))] {
                header {
                    a.brand href="/console/campaigns" { "kiemtra" }
                    nav {
                        @if lang == Lang::Vi {
                            a href="/console/lang/en" lang="en" { "English" }
                        } @else {
                            a href="/console/lang/vi" lang="vi" { "Tiếng Việt" }
                        }
                        @if let Some((viewer, csrf)) = who {
                            @if viewer.role == Role::Administrator {
                                a href="/console/admin" { (t(lang, "Quản trị", "Administration")) }
                            }
                            a href="/console/browser" { (t(lang, "Khóa ký", "Signing key")) }
                            span.who { (viewer.full_name) " · " (viewer.role.label(lang)) }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { (t(lang, "Đăng xuất", "Sign out")) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    secured(HttpResponse::Ok()).body(markup.into_string())
}

/// The user's devices as the script reads them: `id team key` each,
/// comma-separated (ids, team ids and hex keys hold no spaces or commas).
fn keys_attr(v: &Viewer) -> String {
    v.devices
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d.device_id,
                d.team,
                kiemtra_core::hex::encode(&d.public_key)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Headers every console answer carries: scripts and fetches from this
/// server only, no framing, no
/// sniffing, no referrer, no caching of pages.
fn secured(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"));
    b
}

pub(crate) fn message_page(
    status: actix_web::http::StatusCode,
    lang: Lang,
    title: &str,
    text: &str,
) -> HttpResponse {
    let body = html! {
        h1 { (title) }
        p { (text) }
        p { a href="/console/sign-in" { (t(lang, "Đăng nhập", "Sign in")) } }
    };
    let mut r = page(lang, title, None, body);
    *r.status_mut() = status;
    r
}

fn no_campaign(lang: Lang) -> HttpResponse {
    message_page(
        actix_web::http::StatusCode::NOT_FOUND,
        lang,
        t(lang, "Không tìm thấy", "Not found"),
        t(lang, "Không có đợt kiểm tra này.", "No such campaign."),
    )
}

pub(crate) fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=3600"))
        .body(include_str!("console.css"))
}

/// The console's one script (signing keys and signed acts), revalidated on
/// every use so that a new server's script is the one that signs.
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(include_str!("console.js"))
}

pub async fn set_lang(path: web::Path<String>) -> HttpResponse {
    let value = if path.as_str() == "en" { "en" } else { "vi" };
    let cookie = Cookie::build(LANG_COOKIE, value)
        .path("/console")
        .same_site(SameSite::Lax)
        .http_only(true)
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/console"))
        .finish()
}

pub async fn root(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match viewer(&state, &req).await {
        Ok(Some(_)) => redirect("/console/campaigns"),
        _ => redirect("/console/sign-in"),
    }
}

// ---------------------------------------------------------------- who

/// The signed-in user as the directory knows them.
pub struct Viewer {
    pub user_id: UserId,
    pub full_name: String,
    pub role: Role,
    /// The teams the user leads or belongs to.
    pub teams: Vec<String>,
    pub csrf: String,
    pub session_hash: Vec<u8>,
    /// The user's unrevoked devices (browsers and phones): the console's
    /// script signs with the one whose key this browser holds.
    pub devices: Vec<kiemtra_store::DeviceRecord>,
}

impl Viewer {
    /// The teams whose visits this user may see; `None` for all of them.
    pub(crate) fn visit_scope(&self) -> Option<Vec<String>> {
        match self.role {
            Role::Auditor => None,
            Role::Administrator => Some(Vec::new()),
            _ => Some(self.teams.clone()),
        }
    }
}

fn teams_of(d: &Directory, user: &UserId) -> Vec<String> {
    d.teams
        .values()
        .filter(|t| t.members.contains(user) || t.leaders.contains(user))
        .map(|t| t.team_id.to_string())
        .collect()
}

/// The session's user, or `None` when there is no good session.
pub(crate) async fn viewer(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<Option<Viewer>, Problem> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let token = cookie.value().to_owned();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let hash = crate::secrets::sha256(&token);
    with_store(state, move |s| {
        let Some(session) = s.console_session(&hash)? else {
            return Ok(None);
        };
        if session.expires_at < stamp(now()) {
            s.delete_console_session(&hash, &stamp(now()))?;
            return Ok(None);
        }
        let d = crate::admin::directory_cached(s)?;
        let Some(user) = UserId::parse(&session.user_id)
            .ok()
            .and_then(|u| d.users.get(&u).cloned())
        else {
            return Ok(None);
        };
        if !user.active {
            return Ok(None);
        }
        let devices = s
            .devices()?
            .into_iter()
            .filter(|d| d.user_id == user.user_id.as_str() && d.revoked_at.is_none())
            .collect();
        Ok(Some(Viewer {
            devices,
            teams: teams_of(&d, &user.user_id),
            user_id: user.user_id,
            full_name: user.full_name,
            role: user.role,
            csrf: session.csrf,
            session_hash: hash,
        }))
    })
    .await
}

/// The session's user, or an answer that sends the browser to sign in.
pub(crate) async fn require_viewer(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<Viewer, HttpResponse> {
    match viewer(state, req).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(redirect("/console/sign-in")),
        Err(e) => Err(actix_web::ResponseError::error_response(&e)),
    }
}

/// Whether a posted form's token is the session's (or, before a session,
/// the form cookie's). Compared as digests, so the time taken says nothing
/// of where they differ.
pub(crate) fn token_matches(expected: &str, given: &str) -> bool {
    !expected.is_empty() && crate::secrets::sha256(expected) == crate::secrets::sha256(given)
}

/// A page refused to this user's role.
pub(crate) fn not_allowed(lang: Lang, vi: &'static str, en: &'static str) -> HttpResponse {
    message_page(
        actix_web::http::StatusCode::FORBIDDEN,
        lang,
        t(lang, "Không được phép", "Not allowed"),
        t(lang, vi, en),
    )
}

/// A visit that does not exist, or not in this user's scope: one answer.
pub(crate) fn no_visit(lang: Lang) -> HttpResponse {
    message_page(
        actix_web::http::StatusCode::NOT_FOUND,
        lang,
        t(lang, "Không tìm thấy", "Not found"),
        t(
            lang,
            "Không có biên bản này trong phạm vi của bạn.",
            "No such visit in your scope.",
        ),
    )
}

pub(crate) fn forbidden_form(lang: Lang) -> HttpResponse {
    message_page(
        actix_web::http::StatusCode::FORBIDDEN,
        lang,
        t(lang, "Biểu mẫu không hợp lệ", "Form refused"),
        t(
            lang,
            "Biểu mẫu thiếu mã xác thực (CSRF) hoặc mã đã hết hạn. Hãy tải lại trang và gửi lại.",
            "The form's token (CSRF) is missing or stale. Reload the page and send it again.",
        ),
    )
}

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    pub code: String,
    pub user: String,
    pub password: String,
    pub again: String,
    #[serde(default)]
    pub csrf: String,
    /// The browser's new Ed25519 public key (hex), made by the console's
    /// script; empty when the browser cannot make one.
    #[serde(default)]
    pub public_key: String,
}

/// The name a browser's device is enrolled under.
const BROWSER_DEVICE: &str = "Trình duyệt (console)";

/// A form shown before there is a session carries a token that must match
/// a cookie set with it (double submit).
fn pre_session_form(
    lang: Lang,
    title: &str,
    status: actix_web::http::StatusCode,
    fields: impl FnOnce(&str) -> Markup,
) -> Result<HttpResponse, Problem> {
    let token = random_hex()?;
    let body = fields(&token);
    let mut r = page(lang, title, None, body);
    *r.status_mut() = status;
    let cookie = Cookie::build(FORM_COOKIE, token)
        .path("/console")
        .same_site(SameSite::Strict)
        .http_only(true)
        .finish();
    r.add_cookie(&cookie)
        .map_err(|e| Problem::Internal(e.to_string()))?;
    Ok(r)
}

fn sign_in_page(
    lang: Lang,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, Problem> {
    pre_session_form(lang, t(lang, "Đăng nhập", "Sign in"), status, |token| {
        html! {
            h1 { (t(lang, "Đăng nhập", "Sign in")) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="user" { (t(lang, "Tên đăng nhập", "User id")) }
                input id="user" name="user" type="text" autocomplete="username" required maxlength="64";
                label for="password" { (t(lang, "Mật khẩu", "Password")) }
                input id="password" name="password" type="password" autocomplete="current-password" required maxlength="128";
                button type="submit" { (t(lang, "Đăng nhập", "Sign in")) }
            }
            p { a href="/console/invite" { (t(lang, "Lần đầu, hoặc quên mật khẩu? Đặt mật khẩu bằng mã do quản trị viên cấp", "First time, or forgot the password? Set it with a code from your administrator")) } }
        }
    })
}

pub async fn sign_in_form(req: HttpRequest) -> Result<HttpResponse, Problem> {
    sign_in_page(lang_of(&req), None, actix_web::http::StatusCode::OK)
}

fn argon2() -> argon2::Argon2<'static> {
    // argon2id, 19 MiB, 2 passes, 1 lane: the OWASP recommendation.
    argon2::Argon2::default()
}

fn hash_password(password: &str) -> Result<String, Problem> {
    let salt = ring_salt()?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Problem::Internal(e.to_string()))
}

fn ring_salt() -> Result<SaltString, Problem> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Problem::Internal("no system randomness".into()))?;
    SaltString::encode_b64(&b).map_err(|e| Problem::Internal(e.to_string()))
}

/// A hash no password matches, checked for unknown users so that their
/// answer takes as long as a known user's.
const NO_ACCOUNT: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

enum SignIn {
    Good(String),
    Bad,
    Locked(String),
}

pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let form = form.into_inner();
    let cookie = req
        .cookie(FORM_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !token_matches(&cookie, &form.csrf) {
        return Ok(forbidden_form(lang));
    }
    if form.user.len() > 64 || form.password.len() > MAX_PASSWORD {
        return sign_in_page(
            lang,
            Some(t(
                lang,
                "Tên đăng nhập hoặc mật khẩu không đúng.",
                "Wrong user id or password.",
            )),
            actix_web::http::StatusCode::UNAUTHORIZED,
        );
    }
    let user = form.user.trim().to_owned();
    let outcome = with_store(&state, move |s| {
        let account = s.console_account(&user)?;
        let at = now();
        if let Some(a) = &account
            && let Some(until) = &a.locked_until
            && *until > stamp(at)
        {
            return Ok(SignIn::Locked(until.clone()));
        }
        let hash = account.as_ref().map_or(NO_ACCOUNT, |a| a.password.as_str());
        let good = verify_password(hash, &form.password);
        let active = UserId::parse(&user).ok().is_some_and(|u| {
            crate::admin::directory(s)
                .ok()
                .and_then(|d| d.users.get(&u).map(|x| x.active))
                .unwrap_or(false)
        });
        match account {
            Some(a) if good && active => {
                s.console_sign_in_result(&user, 0, None)?;
                Ok(SignIn::Good(a.user_id))
            }
            Some(a) => {
                let failed = a.failed.saturating_add(1);
                // Past the free failures, each further one locks the
                // account for twice as long, up to an hour.
                let locked = (failed >= FREE_FAILURES).then(|| {
                    let minutes = 1i64 << (failed - FREE_FAILURES).min(6);
                    stamp(at + chrono::Duration::minutes(minutes.min(60)))
                });
                s.console_sign_in_result(&user, failed, locked.as_deref())?;
                Ok(SignIn::Bad)
            }
            None => Ok(SignIn::Bad),
        }
    })
    .await?;
    match outcome {
        SignIn::Good(user) => start_session(&state, user).await,
        SignIn::Bad => {
            // Every failure costs the sender a second.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            sign_in_page(
                lang,
                Some(t(
                    lang,
                    "Tên đăng nhập hoặc mật khẩu không đúng.",
                    "Wrong user id or password.",
                )),
                actix_web::http::StatusCode::UNAUTHORIZED,
            )
        }
        SignIn::Locked(until) => {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            let shown = kiemtra_core::format_time(
                chrono::DateTime::parse_from_rfc3339(&until)
                    .map(|d| d.with_timezone(&chrono::Utc))
                    .unwrap_or_else(|_| now()),
            );
            let text = format!(
                "{} {shown}",
                t(
                    lang,
                    "Đăng nhập sai quá nhiều lần; tài khoản tạm khóa đến",
                    "Too many failed sign-ins; the account is locked until"
                )
            );
            sign_in_page(
                lang,
                Some(&text),
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            )
        }
    }
}

async fn start_session(state: &web::Data<AppState>, user: String) -> Result<HttpResponse, Problem> {
    let token = random_hex()?;
    let csrf = random_hex()?;
    let hash = crate::secrets::sha256(&token);
    let at = now();
    let session = kiemtra_store::ConsoleSession {
        user_id: user,
        csrf,
        expires_at: stamp(at + chrono::Duration::hours(SESSION_HOURS)),
    };
    with_store(state, move |s| {
        s.create_console_session(&hash, &session, &stamp(at))
            .map_err(Problem::from)
    })
    .await?;
    let cookie = Cookie::build(SESSION_COOKIE, token)
        .path("/console")
        .same_site(SameSite::Strict)
        .http_only(true)
        .secure(state.tls)
        .max_age(actix_web::cookie::time::Duration::hours(SESSION_HOURS))
        .finish();
    let mut gone = Cookie::build(FORM_COOKIE, "").path("/console").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .cookie(gone)
        .insert_header((header::LOCATION, "/console/campaigns"))
        .finish())
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    if !token_matches(&v.csrf, &form.csrf) {
        return Ok(forbidden_form(lang));
    }
    let hash = v.session_hash.clone();
    with_store(&state, move |s| {
        s.delete_console_session(&hash, &stamp(now()))
            .map_err(Problem::from)
    })
    .await?;
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/console").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/console/sign-in"))
        .finish())
}

fn invite_page(
    lang: Lang,
    error: Option<&str>,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, Problem> {
    pre_session_form(
        lang,
        t(lang, "Đặt mật khẩu", "Set a password"),
        status,
        |token| {
            html! {
                h1 { (t(lang, "Đặt mật khẩu bằng mã mời", "Set a password with your invitation code")) }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                p { (t(lang, "Trình duyệt này sẽ tạo một khóa ký riêng (không thể sao chép ra ngoài) và đăng ký khóa đó bằng mã mời: mọi phê duyệt của bạn được ký bằng khóa này.",
                    "This browser will make a signing key of its own (it cannot be copied out) and enroll it with the invitation code: every approval you make is signed with it.")) }
                form method="post" action="/console/invite" data-enroll {
                    input type="hidden" name="csrf" value=(token);
                    input type="hidden" name="public_key" value="";
                    label for="code" { (t(lang, "Mã mời (do quản trị viên cấp)", "Invitation code (from your administrator)")) }
                    input id="code" name="code" type="text" autocomplete="one-time-code" required maxlength="32";
                    label for="user" { (t(lang, "Tên đăng nhập", "User id")) }
                    input id="user" name="user" type="text" autocomplete="username" required maxlength="64";
                    label for="password" { (t(lang, "Mật khẩu mới (ít nhất 10 ký tự)", "New password (at least 10 characters)")) }
                    input id="password" name="password" type="password" autocomplete="new-password" required minlength="10" maxlength="128";
                    label for="again" { (t(lang, "Nhập lại mật khẩu", "The password again")) }
                    input id="again" name="again" type="password" autocomplete="new-password" required minlength="10" maxlength="128";
                    button type="submit" { (t(lang, "Đặt mật khẩu và đăng nhập", "Set the password and sign in")) }
                }
            }
        },
    )
}

pub async fn invite_form(req: HttpRequest) -> Result<HttpResponse, Problem> {
    invite_page(lang_of(&req), None, actix_web::http::StatusCode::OK)
}

/// Sets an account's first password with an unexpired, unused code the
/// administration log holds for that user.
pub async fn invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let form = form.into_inner();
    let cookie = req
        .cookie(FORM_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if !token_matches(&cookie, &form.csrf) {
        return Ok(forbidden_form(lang));
    }
    let refuse = |vi, en| {
        invite_page(
            lang,
            Some(t(lang, vi, en)),
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let chars = form.password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        return refuse(
            "Mật khẩu phải dài từ 10 đến 128 ký tự.",
            "A password is 10 to 128 characters long.",
        );
    }
    if form.password != form.again {
        return refuse(
            "Hai lần nhập mật khẩu không giống nhau.",
            "The two passwords differ.",
        );
    }
    if form.code.len() > 32 || form.user.len() > 64 {
        return refuse(
            "Mã mời hoặc tên đăng nhập không đúng.",
            "Wrong invitation code or user id.",
        );
    }
    if !form.public_key.is_empty() && crate::auth::public_key(&form.public_key).is_err() {
        return refuse(
            "Khóa ký của trình duyệt không hợp lệ.",
            "The browser's signing key is not valid.",
        );
    }
    let code_hash =
        kiemtra_admin::log::sha256_hex(crate::secrets::normalise_code(&form.code).as_bytes());
    let user = form.user.trim().to_owned();
    let password = form.password;
    let code = form.code;
    let public_key = form.public_key;
    let set = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        let good = d.codes.get(&code_hash).is_some_and(|c| {
            c.user_id.as_str() == user && c.used_by.is_none() && c.expires_at > stamp(now())
        }) && UserId::parse(&user)
            .ok()
            .and_then(|u| d.users.get(&u))
            .is_some_and(|u| u.active);
        // A code sets the first password; for an account that has one it
        // resets it only while enrolling this browser's key, which uses the
        // code up, so that one code never sets a password twice.
        if !good || (s.console_account(&user)?.is_some() && public_key.is_empty()) {
            return Ok(None);
        }
        // The browser's key is enrolled with the code, which that uses up.
        if !public_key.is_empty()
            && crate::auth::enroll(s, &code, BROWSER_DEVICE, &public_key).is_err()
        {
            return Ok(None);
        }
        let hash = hash_password(&password)?;
        s.set_console_password(&user, &hash, &stamp(now()))?;
        Ok(Some(user))
    })
    .await?;
    match set {
        Some(user) => start_session(&state, user).await,
        None => {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            refuse(
                "Mã mời không đúng, đã hết hạn hoặc đã dùng (hoặc, khi đặt lại mật khẩu, trình duyệt này không tạo được khóa ký).",
                "The invitation code is wrong, expired or used (or, to reset a password, this browser could not make its signing key).",
            )
        }
    }
}

// ---------------------------------------------------------------- campaigns

/// The campaigns the viewer may see: all for auditors and administrators,
/// those with one of their teams for the others.
fn campaigns_for<'a>(d: &'a Directory, v: &Viewer) -> Vec<&'a kiemtra_admin::Campaign> {
    d.campaigns
        .values()
        .filter(|c| match v.role {
            Role::Auditor | Role::Administrator => true,
            _ => c.teams.iter().any(|t| v.teams.contains(&t.to_string())),
        })
        .collect()
}

pub(crate) fn date(d: chrono::NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

pub async fn campaigns(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let d = with_store(&state, |s| crate::admin::directory_cached(s)).await?;
    let list = campaigns_for(&d, &v);
    let body = html! {
        h1 { (t(lang, "Đợt kiểm tra", "Campaigns")) }
        @if list.is_empty() {
            p { (t(lang, "Chưa có đợt kiểm tra nào của bạn.", "No campaign of yours yet.")) }
        } @else {
            table {
                thead { tr {
                    th scope="col" { (t(lang, "Đợt kiểm tra", "Campaign")) }
                    th scope="col" { (t(lang, "Căn cứ", "Ordered by")) }
                    th scope="col" { (t(lang, "Thời gian", "Period")) }
                    th scope="col" { (t(lang, "Số đơn vị", "Units")) }
                } }
                tbody {
                    @for c in &list {
                        tr {
                            td { a href={ "/console/campaigns/" (c.campaign_id) } { (c.title) } }
                            td { (c.decision) }
                            td { (date(c.starts_on)) " – " (date(c.ends_on)) }
                            td.num { (format_count(c.assignments.len() as u32, lang)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        lang,
        t(lang, "Đợt kiểm tra", "Campaigns"),
        Some((&v, &v.csrf)),
        body,
    ))
}

#[derive(Debug, Deserialize)]
pub struct Range {
    /// dd/mm/yyyy or yyyy-mm-dd.
    pub from: Option<String>,
    pub to: Option<String>,
}

fn parse_day(s: &Option<String>) -> Result<Option<chrono::NaiveDate>, String> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > 10 => Err(format!("{v:?} is not a date")),
        Some(v) => kiemtra_admin::import::parse_date(v).map(Some),
    }
}

/// One bar chart as inline SVG: a label, a count and its share per bar.
fn bars(title: &str, rows: &[(String, u32, String)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let height = 26 * rows.len() as u32 + 8;
    html! {
        figure {
            figcaption { (title) }
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 600 " (height) } role="img" aria-label=(title) {
                @for (i, (label, n, share)) in rows.iter().enumerate() {
                    @let y = 4 + 26 * i as u32;
                    @let w = 300 * n / max;
                    text x="0" y=(y + 16) font-size="13" { (label) }
                    rect x="240" y=(y + 3) width=(w.max(1)) height="16" fill="#2f6f8f" {}
                    text x=(246 + w) y=(y + 16) font-size="13" { (share) }
                }
            }
        }
    }
}

pub async fn campaign(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    range: web::Query<Range>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let Ok(id) = CampaignId::parse(&path.into_inner()) else {
        return Ok(no_campaign(lang));
    };
    let (from, to) = match (parse_day(&range.from), parse_day(&range.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            return Ok(message_page(
                actix_web::http::StatusCode::BAD_REQUEST,
                lang,
                t(lang, "Khoảng ngày không hợp lệ", "Bad date range"),
                &e,
            ));
        }
    };
    let scope = v.visit_scope();
    let role = v.role;
    let campaign_id = id.clone();
    let found = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        let Some(c) = d.campaigns.get(&campaign_id).cloned() else {
            return Ok(None);
        };
        let list: Vec<kiemtra_store::VisitSummary> = s
            .list_visits()?
            .into_iter()
            .filter(|x| x.campaign == campaign_id.as_str())
            .collect();
        let within = match (from, to) {
            (None, None) => None,
            (f, t) => Some((
                f.unwrap_or(chrono::NaiveDate::MIN),
                t.unwrap_or(chrono::NaiveDate::MAX),
            )),
        };
        let report = match &scope {
            Some(teams) if teams.is_empty() => None,
            _ => {
                crate::report_routes::build_report(s, &campaign_id, scope.as_deref(), within, lang)
                    .ok()
                    .map(|r| r.0)
            }
        };
        Ok(Some((d, c, list, report)))
    })
    .await?;
    let Some((d, c, list, report)) = found else {
        return Ok(no_campaign(lang));
    };
    if !campaigns_for(&d, &v).iter().any(|x| x.campaign_id == id) {
        return Ok(no_campaign(lang));
    }
    let in_range =
        |day: chrono::NaiveDate| from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t);
    // Progress by team and by kind of unit: planned from the log's
    // assignments, the rest from the visits' statuses.
    let mut progress: BTreeMap<(String, String), [u32; 5]> = BTreeMap::new();
    let kind_of = |code: &kiemtra_core::UnitCode| {
        d.units
            .get(code)
            .map(|u| u.record.kind.label(lang).to_owned())
            .unwrap_or_default()
    };
    for a in c.assignments.iter().filter(|a| in_range(a.planned_on)) {
        progress
            .entry((a.team_id.to_string(), kind_of(&a.unit)))
            .or_default()[0] += 1;
    }
    let visible = |team: &str| match &v.visit_scope() {
        None => true,
        Some(t) => t.iter().any(|x| x == team),
    };
    for s in list.iter().filter(|s| {
        chrono::NaiveDate::parse_from_str(&s.scheduled_on, "%Y-%m-%d").is_ok_and(in_range)
    }) {
        let kind = kiemtra_core::UnitKind::parse(&s.unit_kind)
            .map(|k| k.label(lang).to_owned())
            .unwrap_or_default();
        let row = progress.entry((s.team.clone(), kind)).or_default();
        let recorded = s.tally.payroll > 0 && s.tally.unrecorded < s.tally.payroll;
        match s.status.as_str() {
            "submitted" => row[2] += 1,
            "approved" => row[3] += 1,
            "returned" => row[4] += 1,
            _ if recorded => row[1] += 1,
            _ => {}
        }
    }
    let heads = [
        t(lang, "Kế hoạch", "Planned"),
        t(lang, "Đã ghi nhận", "Recorded"),
        t(lang, "Đã gửi", "Submitted"),
        t(lang, "Đã phê duyệt", "Approved"),
        t(lang, "Trả lại", "Returned"),
    ];
    let team_name = |id: &str| {
        kiemtra_core::TeamId::parse(id)
            .ok()
            .and_then(|t| d.teams.get(&t))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    let body = html! {
        h1 { (c.title) }
        p.meta { (c.decision) " · " (date(c.starts_on)) " – " (date(c.ends_on)) }
        nav.visit-links data-events={ "/console/campaigns/" (id) "/events" } {
            a href={ "/console/campaigns/" (id) "/report" } { (t(lang, "Báo cáo", "Report")) }
            @if matches!(v.role, Role::Supervisor | Role::Auditor) {
                " · " a href={ "/console/campaigns/" (id) "/verify" } { (t(lang, "Kiểm chứng", "Verification")) }
            }
            @if v.role == Role::Supervisor {
                " · " a href={ "/console/campaigns/" (id) "/approve" } { (t(lang, "Phê duyệt hàng loạt", "Bulk approval")) }
            }
            " · " span.live role="status" {}
        }
        form.range method="get" action={ "/console/campaigns/" (id) } {
            label for="from" { (t(lang, "Từ ngày", "From")) }
            input id="from" name="from" type="text" inputmode="numeric" placeholder="dd/mm/yyyy" value=(from.map(date).unwrap_or_default());
            label for="to" { (t(lang, "Đến ngày", "To")) }
            input id="to" name="to" type="text" inputmode="numeric" placeholder="dd/mm/yyyy" value=(to.map(date).unwrap_or_default());
            button type="submit" { (t(lang, "Lọc", "Filter")) }
        }
        h2 { (t(lang, "Tiến độ theo đoàn và loại đơn vị", "Progress by team and kind of unit")) }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Đoàn", "Team")) }
                th scope="col" { (t(lang, "Loại đơn vị", "Kind of unit")) }
                @for h in heads { th scope="col" { (h) } }
            } }
            tbody {
                @for ((team, kind), n) in progress.iter().filter(|((team, _), _)| visible(team) || role == Role::Administrator) {
                    tr {
                        td { (team_name(team)) }
                        td { (kind) }
                        @for x in n { td.num { (format_count(*x, lang)) } }
                    }
                }
            }
        }
        @if role != Role::Administrator {
            @let shown: Vec<&kiemtra_store::VisitSummary> = list
                .iter()
                .filter(|s| visible(&s.team))
                .filter(|s| chrono::NaiveDate::parse_from_str(&s.scheduled_on, "%Y-%m-%d").is_ok_and(in_range))
                .collect();
            @if !shown.is_empty() {
                h2 { (t(lang, "Biên bản", "Visits")) }
                table {
                    thead { tr {
                        th scope="col" { (t(lang, "Đơn vị", "Unit")) }
                        th scope="col" { (t(lang, "Ngày", "Date")) }
                        th scope="col" { (t(lang, "Trạng thái", "Status")) }
                        th scope="col" { (t(lang, "Xung đột", "Conflicts")) }
                    } }
                    tbody {
                        @for s in shown {
                            tr class=[(s.conflicts > 0).then_some("conflict")] {
                                td { a href={ "/console/visits/" (s.id) } { (s.unit_name) } }
                                td { (chrono::NaiveDate::parse_from_str(&s.scheduled_on, "%Y-%m-%d").map(date).unwrap_or_default()) }
                                td { (kiemtra_core::VisitStatus::parse(&s.status).map(|x| status_label(x, lang)).unwrap_or("")) }
                                td.num { (format_count(s.conflicts, lang)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(r) = &report {
            h2 { (t(lang, "Kết quả (biên bản đã phê duyệt)", "Results (approved visits)")) }
            p.figures {
                (t(lang, "Tổng số CBCCVC trong biên chế", "Staff on payroll")) ": " strong { (format_count(r.tally.payroll, lang)) }
                " · " (t(lang, "Có mặt", "Present")) ": " strong { (format_count(r.tally.present, lang)) } " (" (r.present_pct) ")"
                " · " (t(lang, "Vắng mặt", "Absent")) ": " strong { (format_count(r.tally.absent, lang)) } " (" (r.absent_pct) ")"
            }
            (bars(t(lang, "Có mặt và vắng mặt", "Present and absent"), &[
                (t(lang, "Có mặt", "Present").to_owned(), r.tally.present, r.present_pct.clone()),
                (t(lang, "Vắng mặt", "Absent").to_owned(), r.tally.absent, r.absent_pct.clone()),
            ]))
            @if !r.reasons.is_empty() {
                (bars(t(lang, "Lý do vắng mặt", "Reasons of absence"), &r.reasons))
            }
            @if !r.checks_failed.is_empty() || !r.conduct_violations.is_empty() {
                h2 { (t(lang, "Vi phạm theo nội dung kiểm tra", "Violations by check")) }
                ul {
                    @for (what, n) in &r.conduct_violations { li { (what) ": " (format_count(*n, lang)) " " (t(lang, "người", "staff")) } }
                    @for (what, n) in &r.checks_failed { li { (what) ": " (format_count(*n, lang)) " " (t(lang, "đơn vị", "units")) } }
                }
            }
            p { a href={ "/console/campaigns/" (id) "/report" } { (t(lang, "Báo cáo và tải về", "Report and downloads")) } }
        } @else if role == Role::Administrator {
            p { (t(lang, "Quản trị viên không xem nội dung biên bản.", "Administrators do not see visit contents.")) }
        } @else {
            p { (t(lang, "Chưa có biên bản nào được phê duyệt trong phạm vi này.", "No approved visit in this range yet.")) }
        }
    };
    Ok(page(lang, &c.title, Some((&v, &v.csrf)), body))
}

#[derive(Debug, Deserialize)]
pub struct Download {
    pub format: Option<String>,
}

pub async fn report(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<Download>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let Ok(id) = CampaignId::parse(&path.into_inner()) else {
        return Ok(no_campaign(lang));
    };
    let scope = match v.visit_scope() {
        Some(teams) if teams.is_empty() => {
            return Ok(crate::console::not_allowed(
                lang,
                "Quản trị viên không xem nội dung biên bản.",
                "Administrators do not see visit contents.",
            ));
        }
        s => s,
    };
    let format = q.format.clone().unwrap_or_default();
    if !matches!(format.as_str(), "" | "csv" | "json" | "xlsx" | "pdf") {
        return Ok(message_page(
            actix_web::http::StatusCode::BAD_REQUEST,
            lang,
            t(lang, "Định dạng không hợp lệ", "Unknown format"),
            "csv, json, xlsx, pdf",
        ));
    }
    let campaign = id.clone();
    let user = v.user_id.to_string();
    let built = with_store(&state, move |s| {
        crate::report_routes::build_report(s, &campaign, scope.as_deref(), None, lang)
            .map(Some)
            .or_else(|e| match e {
                Problem::NotFound(_) => Ok(None),
                e => Err(e),
            })
    })
    .await?;
    let Some((report, directory, title)) = built else {
        return Ok(message_page(
            actix_web::http::StatusCode::NOT_FOUND,
            lang,
            t(lang, "Không tìm thấy", "Not found"),
            t(
                lang,
                "Không có biên bản nào bạn được xem trong đợt này.",
                "No visit of this campaign you may see.",
            ),
        ));
    };
    if !format.is_empty() {
        let head = match format.as_str() {
            "pdf" => Some(crate::report_routes::letterhead(
                &crate::report_routes::ReportQuery::default(),
                directory.as_deref(),
                &id,
                &title,
                &user,
            )?),
            _ => None,
        };
        let (media, body) = crate::report_routes::encoded(report, &format, lang, head).await?;
        return Ok(HttpResponse::Ok()
            .content_type(media)
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.{format}\""),
            ))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(body));
    }
    let md = report.markdown(lang);
    let body = html! {
        h1 { (report.title) }
        nav.downloads aria-label=(t(lang, "Tải về", "Downloads")) {
            @for (f, name) in [("csv", "CSV"), ("json", "JSON"), ("xlsx", "Excel (.xlsx)"), ("pdf", "PDF")] {
                a href={ "/console/campaigns/" (id) "/report?format=" (f) } { (name) }
            }
        }
        // The report's Markdown, shown as text (escaped) in its lines.
        pre.report { (md) }
        @if !report.approvers.is_empty() {
            p { (t(lang, "Phê duyệt bởi", "Approved by")) ": " (report.approvers.join(", ")) }
        }
        p.mono { (t(lang, "Mã xác minh", "Verification reference")) ": " (report.verification) }
    };
    Ok(page(lang, &report.title, Some((&v, &v.csrf)), body))
}

// ---------------------------------------------------------------- a visit

pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    kiemtra_core::format_time(t)
}

pub(crate) fn status_label(s: kiemtra_core::VisitStatus, lang: Lang) -> &'static str {
    use kiemtra_core::VisitStatus as S;
    match s {
        S::Draft => t(lang, "Đang ghi nhận", "Draft"),
        S::Submitted => t(lang, "Đã gửi", "Submitted"),
        S::Approved => t(lang, "Đã phê duyệt", "Approved"),
        S::Returned => t(lang, "Trả lại", "Returned"),
    }
}

/// `GET /console/visits/{id}`: the merged visit as the server holds it —
/// roster with attendance and conduct, office checks with their values and
/// photos held, findings, narrative — with every conflict and its
/// candidates (who, when, what differs). Read only.
pub async fn visit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let not_found = || no_visit(lang);
    let Ok(id) = kiemtra_core::VisitId::parse(&path.into_inner()) else {
        return Ok(not_found());
    };
    let scope = v.visit_scope();
    let visit = with_store(&state, move |s| {
        let Some(summary) = s.list_visits()?.into_iter().find(|x| x.id == id) else {
            return Ok(None);
        };
        if let Some(teams) = &scope
            && !teams.contains(&summary.team)
        {
            return Ok(None);
        }
        let bytes = s.stored_bytes(&id)?;
        let visit = kiemtra_core::Visit::load(&bytes, s.session())
            .map_err(|e| Problem::Internal(format!("visit {id} does not load: {e}")))?;
        let state = visit
            .state()
            .map_err(|e| Problem::Internal(e.to_string()))?;
        let mut held = std::collections::BTreeSet::new();
        for h in state.evidence.values().flatten() {
            if s.evidence_status(&id, h)?.is_some_and(|e| e.complete) {
                held.insert(h.clone());
            }
        }
        Ok(Some((
            state,
            heads_text(&visit.heads()),
            summary.team,
            held,
        )))
    })
    .await?;
    let Some((st, heads, team, held)) = visit else {
        return Ok(not_found());
    };
    let vid = st.meta.visit_id.to_string();
    // Write controls only for a supervisor of the visit's team.
    let acts = v.role == Role::Supervisor && v.teams.contains(&team);
    let status = st.status.value().status;
    let conflicts = st.conflicts();
    let in_conflict = |f: &kiemtra_core::FieldRef| conflicts.iter().any(|c| &c.field == f);
    let body = html! {
        h1 { (st.meta.unit.name) }
        p.meta {
            (date(st.meta.scheduled_on)) " · " (st.meta.campaign) " · " (st.meta.team)
            " · " strong { (status_label(status, lang)) }
        }
        nav.visit-links {
            a href={ "/console/visits/" (vid) "/history" } { (t(lang, "Lịch sử và phát lại", "History and replay")) }
            " · "
            a href={ "/console/visits/" (vid) "/verify" } { (t(lang, "Kiểm chứng chữ ký", "Verify signatures")) }
        }
        @if acts && status == kiemtra_core::VisitStatus::Submitted {
            section.acts aria-labelledby="acts" {
                h2 #acts { (t(lang, "Phê duyệt hoặc trả lại", "Approve or return")) }
                noscript { p.error { (t(lang, "Việc ký cần JavaScript.", "Signing needs JavaScript.")) } }
                @if conflicts.is_empty() {
                    form.signed data-visit=(vid) data-team=(team) data-act="approve" data-heads=(heads) {
                        label for="approve-note" { (t(lang, "Ghi chú phê duyệt (không bắt buộc)", "Approval note (optional)")) }
                        input id="approve-note" name="note" type="text" maxlength="500";
                        button type="submit" { (t(lang, "Ký và phê duyệt", "Sign and approve")) }
                    }
                } @else {
                    p { (t(lang, "Còn xung đột: xử lý hết trước khi phê duyệt.", "Conflicts remain: settle them all before approving.")) }
                }
                form.signed data-visit=(vid) data-team=(team) data-act="return" data-heads=(heads) {
                    label for="return-reason" { (t(lang, "Lý do trả lại", "Reason for returning")) }
                    input id="return-reason" name="note" type="text" required maxlength="500";
                    button type="submit" { (t(lang, "Ký và trả lại", "Sign and return")) }
                }
            }
        }
        @if !conflicts.is_empty() {
            section.conflicts aria-labelledby="conflicts" {
                h2 #conflicts { (t(lang, "Xung đột cần trưởng đoàn xử lý", "Conflicts for the supervisor to settle")) " (" (conflicts.len()) ")" }
                @for c in &conflicts {
                    article.conflict {
                        h3 { (c.field.describe(lang, &st)) }
                        p { (t(lang, "Khác nhau ở", "Differs in")) ": "
                            (c.differences().iter().map(|a| a.label(lang)).collect::<Vec<_>>().join(", ")) }
                        ol {
                            @for (i, cand) in c.candidates.iter().enumerate() {
                                li {
                                    (cand.value.describe_for(&c.field, lang, &st)) " — " (cand.stamp.by) " · " (cand.stamp.device) " · " (when(cand.stamp.at))
                                    @if acts {
                                        form.signed.inline data-visit=(vid) data-team=(team) data-act="settle" data-heads=(heads) {
                                            input type="hidden" name="field" value=(c.field.to_string());
                                            input type="hidden" name="candidate" value=(i);
                                            button type="submit" aria-label={ (t(lang, "Giữ giá trị này", "Keep this value")) ": " (c.field.describe(lang, &st)) " — " (cand.value.describe_for(&c.field, lang, &st)) } { (t(lang, "Giữ giá trị này", "Keep this value")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "Danh sách và điểm danh", "Roster and attendance")) }
        table {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (t(lang, "Họ và tên", "Name")) }
                th scope="col" { (t(lang, "Chức vụ", "Position")) }
                th scope="col" { (t(lang, "Điểm danh", "Attendance")) }
                th scope="col" { (t(lang, "Tác phong", "Conduct")) }
            } }
            tbody {
                @for (i, sid) in st.roster.iter().enumerate() {
                    @let member = st.staff.get(sid);
                    @let field = kiemtra_core::FieldRef::Attendance { staff: sid.clone() };
                    tr class=[in_conflict(&field).then_some("conflict")] {
                        td.num { (i + 1) }
                        td { (member.map(|m| m.value.name.as_str()).unwrap_or("")) }
                        td { (member.map(|m| m.value.position.as_str()).unwrap_or("")) }
                        td {
                            @match st.attendance.get(sid) {
                                Some(slot) => {
                                    (slot.value().mark.label(lang))
                                    @if !slot.value().note.is_empty() { " — " (slot.value().note) }
                                    br; small { (slot.winner.stamp.by) " · " (when(slot.winner.stamp.at)) }
                                }
                                None => { (t(lang, "chưa ghi nhận", "not recorded")) }
                            }
                        }
                        td {
                            @for ((who, kind), slot) in st.conduct.iter().filter(|((who, _), _)| who == sid) {
                                @let _ = who;
                                span.mark { (kind.label(lang)) ": " (slot.value().result.label(lang)) } " "
                            }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "Nội dung kiểm tra tại cơ quan", "Office checks")) }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Nội dung", "Check")) }
                th scope="col" { (t(lang, "Kết quả", "Result")) }
                th scope="col" { (t(lang, "Ảnh", "Photos")) }
            } }
            tbody {
                @for def in &st.template.checks {
                    @let field = kiemtra_core::FieldRef::OfficeCheck { check: def.id.clone() };
                    tr class=[in_conflict(&field).then_some("conflict")] {
                        td { (def.label.get(lang)) }
                        td {
                            @match st.checks.get(&def.id) {
                                Some(slot) => {
                                    (slot.value().result.label(lang))
                                    @if let Some(value) = &slot.value().value { ": " (def.describe_value(value, lang)) }
                                    @if !slot.value().note.is_empty() { " — " (slot.value().note) }
                                }
                                None => { "—" }
                            }
                        }
                        td.photos {
                            @for h in st.evidence.get(&def.id).into_iter().flatten() {
                                @if held.contains(h) {
                                    a href={ "/console/visits/" (vid) "/evidence/" (h.as_str()) } {
                                        img src={ "/console/visits/" (vid) "/evidence/" (h.as_str()) } loading="lazy" width="96" height="72"
                                            alt={ (t(lang, "Ảnh minh chứng: ", "Evidence photo: ")) (def.label.get(lang)) };
                                    }
                                } @else {
                                    span.pending title=(h.as_str()) { (t(lang, "ảnh chưa tải lên", "photo not uploaded yet")) }
                                }
                                " "
                            }
                        }
                    }
                }
            }
        }
        @let findings: Vec<_> = st.findings.values().filter(|f| !f.withdrawn()).collect();
        @if !findings.is_empty() {
            h2 { (t(lang, "Tồn tại, hạn chế và kiến nghị", "Findings and recommendations")) }
            ul {
                @for f in findings {
                    li { (f.text()) @if !f.recommendation().is_empty() { " — " (t(lang, "Kiến nghị:", "Recommendation:")) " " (f.recommendation()) } }
                }
            }
        }
        @if !st.narrative.is_empty() {
            h2 { (t(lang, "Diễn biến", "Narrative")) }
            p.narrative { (st.narrative) }
        }
        @if !st.approvals.is_empty() {
            h2 { (t(lang, "Phê duyệt", "Approvals")) }
            ul {
                @for a in &st.approvals {
                    li { (a.stamp.by) " · " (when(a.stamp.at)) " · " (t(lang, "đã ký", "signed")) ": " (if a.signature.is_empty() { t(lang, "không", "no") } else { t(lang, "có", "yes") }) }
                }
            }
        }
    };
    Ok(page(lang, &st.meta.unit.name, Some((&v, &v.csrf)), body))
}

// ---------------------------------------------------------------- signing key

/// `GET /console/browser`: the user's enrolled devices (the script marks
/// the one whose key this browser holds) and a form that enrolls this
/// browser's new key with an enrollment code.
pub async fn browser_key(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    browser_key_page(lang, &v, None)
}

fn browser_key_page(lang: Lang, v: &Viewer, error: Option<&str>) -> HttpResponse {
    let body = html! {
        h1 { (t(lang, "Khóa ký của trình duyệt", "This browser's signing key")) }
        p { (t(lang,
            "Mỗi thao tác bạn ký trên trang này (xử lý xung đột, trả lại, phê duyệt) được ký bằng một khóa Ed25519 do chính trình duyệt tạo ra và giữ; máy chủ không bao giờ có khóa đó. Một trình duyệt mới cần một mã đăng ký do quản trị viên cấp.",
            "Every act you sign here (settling a conflict, returning, approving) is signed with an Ed25519 key that this browser made and keeps; the server never holds it. A new browser needs an enrollment code from your administrator.")) }
        h2 { (t(lang, "Thiết bị đã đăng ký của bạn", "Your enrolled devices")) }
        ul data-held {
            @for d in &v.devices {
                li data-device=(d.device_id) {
                    (d.name) " · " (d.team) " · " (d.device_id)
                    span.held {}
                }
            }
            @if v.devices.is_empty() { li { (t(lang, "Chưa có.", "None yet.")) } }
        }
        h2 { (t(lang, "Đăng ký trình duyệt này", "Enroll this browser")) }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        noscript { p.error { (t(lang, "Việc tạo khóa cần JavaScript.", "Making a key needs JavaScript.")) } }
        form method="post" action="/console/browser" data-enroll {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="public_key" value="";
            label for="code" { (t(lang, "Mã đăng ký (do quản trị viên cấp)", "Enrollment code (from your administrator)")) }
            input id="code" name="code" type="text" autocomplete="one-time-code" required maxlength="32";
            button type="submit" { (t(lang, "Tạo khóa và đăng ký", "Make a key and enroll it")) }
        }
    };
    let mut r = page(
        lang,
        t(lang, "Khóa ký", "Signing key"),
        Some((v, &v.csrf)),
        body,
    );
    if error.is_some() {
        *r.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct EnrollBrowserForm {
    #[serde(default)]
    pub csrf: String,
    pub code: String,
    #[serde(default)]
    pub public_key: String,
}

/// `POST /console/browser`: enrolls the browser's public key as a device
/// of the signed-in user with a code the log issued to that user.
pub async fn enroll_browser(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<EnrollBrowserForm>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let form = form.into_inner();
    if !token_matches(&v.csrf, &form.csrf) {
        return forbidden_form(lang);
    }
    if form.public_key.is_empty() {
        return browser_key_page(
            lang,
            &v,
            Some(t(
                lang,
                "Trình duyệt này không tạo được khóa Ed25519 (cần một trình duyệt hỗ trợ WebCrypto Ed25519).",
                "This browser cannot make an Ed25519 key (it needs WebCrypto's Ed25519).",
            )),
        );
    }
    if form.code.len() > 32 || crate::auth::public_key(&form.public_key).is_err() {
        return browser_key_page(
            lang,
            &v,
            Some(t(lang, "Mã hoặc khóa không hợp lệ.", "Bad code or key.")),
        );
    }
    let user = v.user_id.to_string();
    let code = form.code;
    let public_key = form.public_key;
    let enrolled = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        let hash = kiemtra_admin::log::sha256_hex(crate::secrets::normalise_code(&code).as_bytes());
        if d.codes
            .get(&hash)
            .is_none_or(|c| c.user_id.as_str() != user)
        {
            return Ok(false);
        }
        Ok(crate::auth::enroll(s, &code, BROWSER_DEVICE, &public_key).is_ok())
    })
    .await;
    match enrolled {
        Ok(true) => redirect("/console/browser"),
        Ok(false) => {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            browser_key_page(
                lang,
                &v,
                Some(t(
                    lang,
                    "Mã không đúng, không phải của bạn, đã hết hạn hoặc đã dùng.",
                    "The code is wrong, not yours, expired or used.",
                )),
            )
        }
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

// ---------------------------------------------------------------- signed acts

/// `GET /console/campaigns/{id}/approve`: a supervisor's submitted visits
/// without conflicts, to approve together after a confirmation; each is
/// signed by the browser's key in turn.
pub async fn bulk_approval(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(id) = CampaignId::parse(&path.into_inner()) else {
        return no_campaign(lang);
    };
    if v.role != Role::Supervisor {
        return crate::console::not_allowed(
            lang,
            "Chỉ trưởng đoàn mới phê duyệt biên bản.",
            "Only a team's supervisor approves visits.",
        );
    }
    let teams = v.teams.clone();
    let campaign = id.clone();
    let listed = with_store(&state, move |s| {
        Ok(s.list_visits()?
            .into_iter()
            .filter(|x| x.campaign == campaign.as_str() && teams.contains(&x.team))
            .collect::<Vec<_>>())
    })
    .await;
    let list = match listed {
        Ok(l) => l,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let ready: Vec<_> = list
        .iter()
        .filter(|x| x.status == "submitted" && x.conflicts == 0)
        .collect();
    let waiting = list
        .iter()
        .filter(|x| x.status == "submitted" && x.conflicts > 0)
        .count();
    let body = html! {
        h1 { (t(lang, "Phê duyệt hàng loạt", "Bulk approval")) " · " (id) }
        @if waiting > 0 {
            p { (format_count(waiting as u32, lang)) " " (t(lang, "biên bản đã gửi còn xung đột: xử lý từng biên bản trước.", "submitted visits still have conflicts: settle them one by one first.")) }
        }
        @if ready.is_empty() {
            p { (t(lang, "Không có biên bản nào đã gửi, không xung đột, chờ phê duyệt.", "No submitted visit without conflicts is waiting for approval.")) }
        } @else {
            noscript { p.error { (t(lang, "Việc ký cần JavaScript.", "Signing needs JavaScript.")) } }
            form.signed data-bulk data-act="approve" {
                input type="hidden" name="csrf" value=(v.csrf);
                table {
                    thead { tr {
                        th scope="col" { (t(lang, "Đơn vị", "Unit")) }
                        th scope="col" { (t(lang, "Đoàn", "Team")) }
                        th scope="col" { (t(lang, "Ngày", "Date")) }
                        th scope="col" { (t(lang, "Kết quả", "Outcome")) }
                    } }
                    tbody {
                        @for x in &ready {
                            tr data-visit=(x.id) data-team=(x.team) data-heads=(heads_text(&x.heads)) {
                                td { a href={ "/console/visits/" (x.id) } { (x.unit_name) } }
                                td { (x.team) }
                                td { (iso_day(&x.scheduled_on)) }
                                td.outcome {}
                            }
                        }
                    }
                }
                label for="note" { (t(lang, "Ghi chú phê duyệt (không bắt buộc)", "Approval note (optional)")) }
                input id="note" name="note" type="text" maxlength="500";
                p {
                    input id="confirm" name="confirm" type="checkbox" required;
                    label for="confirm" { (t(lang, "Tôi đã xem và phê duyệt ", "I have reviewed and approve ")) (format_count(ready.len() as u32, lang)) (t(lang, " biên bản trên, ký bằng khóa của trình duyệt này.", " visits above, signed with this browser's key.")) }
                }
                button type="submit" { (t(lang, "Ký và phê duyệt tất cả", "Sign and approve them all")) }
            }
        }
    };
    page(
        lang,
        t(lang, "Phê duyệt hàng loạt", "Bulk approval"),
        Some((&v, &v.csrf)),
        body,
    )
}

/// Heads as the forms carry them: hex, space-separated.
pub(crate) fn heads_text(heads: &[kiemtra_core::ChangeHash]) -> String {
    heads
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A stored ISO date (`2015-08-31`) as Vietnamese write it (`31/08/2015`).
pub(crate) fn iso_day(day: &str) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(date)
        .unwrap_or_else(|_| day.to_owned())
}

/// A stored RFC 3339 time in Viet Nam time (`09:12 02/09/2015`).
pub(crate) fn stored_time(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| when(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| at.to_owned())
}

// ---------------------------------------------------------------- live updates

/// Live streams open at once; past that a new one is refused (503) and
/// the page still works, without live updates.
const MAX_STREAMS: usize = 256;
/// How often a stream looks for a change.
const STREAM_TICK: std::time::Duration = std::time::Duration::from_secs(2);
/// A stream ends after this long; the browser's EventSource reconnects.
const STREAM_LIFE: std::time::Duration = std::time::Duration::from_secs(600);

static STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`MAX_STREAMS`] places, given back when the stream ends.
struct StreamPlace;

impl StreamPlace {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering::SeqCst;
        STREAMS
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_STREAMS).then_some(n + 1))
            .ok()
            .map(|_| StreamPlace)
    }
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a campaign's visits in scope look like from the index: how many,
/// and the latest update. Any stored change moves it.
async fn campaign_mark(
    state: &web::Data<AppState>,
    campaign: &CampaignId,
    scope: &Option<Vec<String>>,
) -> Result<String, Problem> {
    let campaign = campaign.clone();
    let scope = scope.clone();
    with_store(state, move |s| {
        let visits: Vec<_> = s
            .list_visits()?
            .into_iter()
            .filter(|x| x.campaign == campaign.as_str())
            .filter(|x| scope.as_ref().is_none_or(|teams| teams.contains(&x.team)))
            .collect();
        let latest = visits
            .iter()
            .map(|x| x.updated_at.as_str())
            .max()
            .unwrap_or("");
        Ok(format!("{} {latest}", visits.len()))
    })
    .await
}

/// `GET /console/campaigns/{id}/events`: server-sent events for the
/// campaign overview — `update` whenever a visit of the campaign in the
/// viewer's scope is stored anew (a phone synced, an act was signed), a
/// comment every tick otherwise. The page then redraws itself.
pub async fn campaign_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let v = match viewer(&state, &req).await {
        Ok(Some(v)) => v,
        Ok(None) => return HttpResponse::Unauthorized().finish(),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let Ok(id) = CampaignId::parse(&path.into_inner()) else {
        return HttpResponse::NotFound().finish();
    };
    let d = match with_store(&state, |s| crate::admin::directory_cached(s)).await {
        Ok(d) => d,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    if !campaigns_for(&d, &v).iter().any(|c| c.campaign_id == id) {
        return HttpResponse::NotFound().finish();
    }
    let Some(place) = StreamPlace::take() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "30"))
            .finish();
    };
    let scope = v.visit_scope();
    let first = match campaign_mark(&state, &id, &scope).await {
        Ok(m) => m,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let started = std::time::Instant::now();
    let stream = futures_util::stream::unfold(
        (state, id, scope, first, place),
        move |(state, id, scope, last, place)| async move {
            tokio::time::sleep(STREAM_TICK).await;
            if started.elapsed() > STREAM_LIFE {
                return None;
            }
            let mark = campaign_mark(&state, &id, &scope).await.ok()?;
            let event = if mark == last {
                web::Bytes::from_static(b": nothing new\n\n")
            } else {
                web::Bytes::from(format!("event: update\ndata: {mark}\n\n"))
            };
            Some((
                Ok::<_, actix_web::Error>(event),
                (state, id, scope, mark, place),
            ))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}

/// A JSON refusal for the script's requests: `{"error": "…"}`.
pub(crate) fn json_refusal(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": message }))
}

/// The signed-in user and the body of their request, read only once the
/// session is checked (nothing is buffered for a request without one),
/// within the server-wide bound on buffered bytes and at most `limit`
/// bytes.
pub(crate) async fn session_body(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(Viewer, Vec<u8>), HttpResponse> {
    let lang = lang_of(req);
    let v = match viewer(state, req).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(json_refusal(
                actix_web::http::StatusCode::UNAUTHORIZED,
                t(
                    lang,
                    "Phiên đăng nhập đã hết. Hãy đăng nhập lại.",
                    "The session has ended. Sign in again.",
                ),
            ));
        }
        Err(e) => return Err(actix_web::ResponseError::error_response(&e)),
    };
    let body = crate::routes::read_body(state, req, payload, limit)
        .await
        .map_err(|e| actix_web::ResponseError::error_response(&e))?;
    Ok((v, body.bytes))
}

/// [`session_body`] read as a form.
pub(crate) async fn session_form<T: serde::de::DeserializeOwned>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<(Viewer, T), HttpResponse> {
    let (v, bytes) = session_body(state, req, payload, limit).await?;
    let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
        json_refusal(
            actix_web::http::StatusCode::BAD_REQUEST,
            &format!("not a form: {e}"),
        )
    })?;
    Ok((v, form))
}
