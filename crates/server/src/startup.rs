//! Building and running the server.

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use kiemtra_core::{DeviceId, Editor, UserId};
use kiemtra_store::Store;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::backend::{Backend, Conn, PgPool};
use std::time::Duration;

use crate::admin_routes;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::routes;

/// Where and how the server runs. Every field has a default that works with
/// no configuration at all.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Folder holding the embedded database (`kiemtra.db`).
    pub data: PathBuf,
    /// A PostgreSQL database (`postgres://user@host:port/db`) to use
    /// instead of the embedded one; several server processes may share it.
    pub database: Option<String>,
    /// Largest request body, bytes.
    pub max_body: usize,
    /// Largest sync response the server builds, bytes (before continuation).
    pub max_response: usize,
    /// Worker threads for HTTP (Automerge work runs on the blocking pool).
    pub workers: usize,
    /// Time allowed to receive a request's headers.
    pub request_timeout: Duration,
    /// Time allowed to receive a sync request's body.
    pub body_timeout: Duration,
    /// PEM certificate chain and private key; TLS (rustls) when both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Sync requests decoded and answered at once; the others wait with
    /// only their received body in memory. Bodies are read without a limit
    /// on how many at a time, so a slow link never holds a place.
    pub max_syncs: usize,
    /// Syncs with their body read that may wait for one of the
    /// `max_syncs` places; one arriving past them is refused at once (503)
    /// with a `Retry-After` that spreads the refused over the time the
    /// server needs for them (see [`crate::admission`]).
    pub max_queued_syncs: usize,
    /// Largest evidence file (a photo) the server takes, bytes.
    pub max_evidence: u64,
    /// Request bytes (sync and evidence bodies) buffered at once across all
    /// requests; at least `max_body`. A body reserves its `Content-Length`
    /// (`max_body` when it has none) before it is read; while the bound is
    /// reached it waits for room, at most `body_timeout`, then is refused
    /// (503, `Retry-After`).
    pub max_buffered: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data: PathBuf::from("kiemtra-data"),
            database: None,
            max_body: 64 << 20,
            max_response: 8 << 20,
            workers: 2,
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(120),
            tls: None,
            max_syncs: 4,
            max_queued_syncs: 32,
            max_evidence: 32 << 20,
            max_buffered: 256 << 20,
        }
    }
}

pub struct Limits {
    pub max_body: usize,
    pub body_timeout: Duration,
    pub max_response: usize,
    pub max_evidence: u64,
}

/// Shared by all workers. With the embedded store there is one connection,
/// the only writer: one sync at a time holds it, so two syncs of one visit
/// never interleave. With PostgreSQL each request has a connection of its
/// own and per-visit row locks keep syncs of one visit apart, across
/// processes too.
pub struct AppState {
    backend: Backend,
    pub metrics: Metrics,
    pub limits: Limits,
    /// Places for syncs past reading their body (`Settings::max_syncs`)
    /// and the queue before them (`Settings::max_queued_syncs`).
    pub admission: crate::admission::Admission,
    /// Failed enrollment attempts by client address.
    pub enroll_limiter: crate::auth::EnrollLimiter,
    /// The bound on request bytes buffered at once (`Settings::max_buffered`).
    pub buffered: BodyBudget,
    /// Served over TLS: the console's cookies are `Secure`.
    pub tls: bool,
}

/// The server-wide bound on request bytes buffered at once, counted in KiB.
/// A request reserves its body's bytes before reading it and holds them
/// (through its decoded form) until it ends; the reservation is released
/// when its permit is dropped, however the request ends.
pub struct BodyBudget {
    kib: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
}

/// Bytes reserved from the [`BodyBudget`]; released when dropped.
#[derive(Debug)]
pub struct Reserved {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Seconds a refused request is told to wait (`Retry-After`).
pub const BUSY_RETRY_SECS: u64 = 10;

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let total_kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        Self {
            kib: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Reserves `bytes`, waiting in arrival order until `deadline`; past it
    /// the request is refused as busy (503 with `Retry-After`).
    pub async fn reserve(
        &self,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Reserved, Problem> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        match tokio::time::timeout_at(deadline, self.kib.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(Reserved { _permit: permit }),
            Ok(Err(e)) => Err(Problem::Internal(e.to_string())),
            Err(_) => Err(Problem::Busy(BUSY_RETRY_SECS)),
        }
    }
}

impl AppState {
    /// A connection for one request; call it on a blocking thread.
    pub fn store(&self) -> Result<Conn<'_>, kiemtra_store::Error> {
        self.backend.conn()
    }
}

/// Opens the database `settings` name: PostgreSQL when `database` is set,
/// else the embedded store in `data`.
pub fn open_backend(settings: &Settings) -> Result<Backend, kiemtra_store::Error> {
    match &settings.database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // The blocking client makes a runtime of its own: it connects
            // on a thread outside any async one.
            let url = url.clone();
            let pool = std::thread::spawn(move || PgPool::open(&url))
                .join()
                .map_err(|_| kiemtra_store::Error::database("connecting panicked"))??;
            Ok(Backend::Postgres(pool))
        }
        Some(other) => Err(kiemtra_store::Error::database(format!(
            "--database takes a postgres:// URL, not {other:?} (the embedded store is the default)"
        ))),
        None => Ok(Backend::Sqlite(Box::new(Mutex::new(open_store(
            &settings.data,
        )?)))),
    }
}

/// Opens the server's store in `data`.
pub fn open_store(data: &std::path::Path) -> Result<Store, kiemtra_store::Error> {
    let editor = Editor::new(
        UserId::parse("server").map_err(kiemtra_store::Error::Visit)?,
        DeviceId::parse("server").map_err(kiemtra_store::Error::Visit)?,
    );
    // A server touches each visit briefly per sync; a small cache keeps its
    // memory flat however many visits it holds. A damaged file is refused
    // before anything is served from it.
    let store = Store::open(data.join("kiemtra.db"), editor)?
        .with_feed()
        .with_cache(8);
    store.check_integrity()?;
    Ok(store)
}

pub struct Application {
    port: u16,
    server: Server,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] kiemtra_store::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, StartError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| StartError::Tls(format!("{}: {e}", p.display())))
    };
    let certs = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| StartError::Tls(format!("key: {e}")))?
        .ok_or_else(|| StartError::Tls("no private key in the key file".into()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartError> {
        let backend = open_backend(&settings)?;
        let state = web::Data::new(AppState {
            tls: settings.tls.is_some(),
            backend,
            metrics: Metrics::default(),
            limits: Limits {
                max_body: settings.max_body,
                body_timeout: settings.body_timeout,
                max_response: settings.max_response,
                max_evidence: settings.max_evidence,
            },
            admission: crate::admission::Admission::new(
                settings.max_syncs.max(1),
                settings.max_queued_syncs,
            ),
            enroll_limiter: crate::auth::EnrollLimiter::default(),
            // A body the limit allows always fits the bound.
            buffered: BodyBudget::new(settings.max_buffered.max(settings.max_body)),
        });
        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| StartError::Listen(settings.listen.clone(), e))?;
        let port = listener
            .local_addr()
            .map_err(|e| StartError::Listen(settings.listen.clone(), e))?
            .port();
        let json = web::JsonConfig::default()
            .limit(16 * 1024)
            .error_handler(|err, _| Problem::BadRequest(err.to_string()).into());
        let query = web::QueryConfig::default()
            .error_handler(|err, _| Problem::BadRequest(err.to_string()).into());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(json.clone())
                .app_data(query.clone())
                .wrap(actix_web::middleware::from_fn(log_request))
                // Each path is one resource: a method it does not take is
                // answered 405 with `Allow`, an unknown path 404.
                .service(get("/healthz").to(routes::healthz))
                .service(get("/metrics").to(routes::metrics))
                .service(get("/v1/openapi.json").to(crate::openapi::document))
                .service(post("/v1/enroll").to(routes::enroll))
                .service(post("/v1/sync").to(routes::sync))
                .service(get("/v1/visits").to(routes::list_visits))
                .service(get("/v1/team/devices").to(routes::team_devices))
                .service(
                    resource("/v1/admin/log", "GET, POST")
                        .route(web::get().to(admin_routes::get_log))
                        .route(web::post().to(admin_routes::post_log)),
                )
                .service(get("/v1/admin/directory").to(admin_routes::get_directory))
                .service(get("/v1/admin/devices/check").to(admin_routes::check_devices))
                .service(post("/v1/admin/imports/{kind}").to(admin_routes::prepare_import))
                .service(get("/v1/admin/export/{list}").to(admin_routes::export))
                .service(get("/v1/visits/{id}").to(routes::get_visit))
                .service(get("/v1/visits/{id}/verify").to(routes::verify_visit))
                .service(get("/v1/visits/{id}/receipts").to(routes::visit_receipts))
                .service(
                    resource("/v1/visits/{id}/evidence/{hash}", "GET, PUT")
                        .route(web::put().to(crate::evidence::put))
                        .route(web::get().to(crate::evidence::get)),
                )
                .service(get("/v1/visits/{id}/evidence/{hash}/status").to(crate::evidence::status))
                .service(get("/v1/campaigns/{id}/verify").to(routes::verify_campaign))
                .service(get("/v1/campaigns/{id}/report").to(crate::report_routes::campaign_report))
                // The web console: pages and forms, on the same port.
                .app_data(
                    web::FormConfig::default()
                        .limit(8 * 1024)
                        .error_handler(|err, _| Problem::BadRequest(err.to_string()).into()),
                )
                .service(get("/console").to(crate::console::root))
                .service(get("/console/static/console.css").to(crate::console::stylesheet))
                .service(get("/console/static/console.js").to(crate::console::script))
                .service(
                    resource("/console/browser", "GET, POST")
                        .route(web::get().to(crate::console::browser_key))
                        .route(web::post().to(crate::console::enroll_browser)),
                )
                // The script's requests: bodies are read after the session is
                // checked, within the server-wide bound (`console::session_body`).
                .service(post("/console/acts/prepare").to(crate::console_acts::prepare))
                .service(post("/console/acts/commit").to(crate::console_acts::commit))
                .service(get("/console/campaigns/{id}/approve").to(crate::console::bulk_approval))
                .service(get("/console/campaigns/{id}/events").to(crate::console::campaign_events))
                .service(get("/console/admin").to(crate::console_admin::root))
                .service(get("/console/admin/{section}").to(crate::console_admin::section))
                .service(post("/console/admin/w/prepare/{kind}").to(crate::console_admin::prepare))
                .service(post("/console/admin/w/import/{kind}").to(crate::console_admin::import))
                .service(post("/console/admin/w/next").to(crate::console_admin::next))
                .service(post("/console/admin/w/commit").to(crate::console_admin::commit))
                .service(get("/console/visits/{id}/history").to(crate::console_replay::replay))
                .service(
                    get("/console/visits/{id}/evidence/{hash}").to(crate::console_replay::evidence),
                )
                .service(get("/console/visits/{id}/verify").to(crate::console_replay::verify_visit))
                .service(
                    get("/console/campaigns/{id}/verify")
                        .to(crate::console_replay::verify_campaign),
                )
                .service(get("/console/lang/{lang}").to(crate::console::set_lang))
                .service(
                    resource("/console/sign-in", "GET, POST")
                        .route(web::get().to(crate::console::sign_in_form))
                        .route(web::post().to(crate::console::sign_in)),
                )
                .service(
                    resource("/console/invite", "GET, POST")
                        .route(web::get().to(crate::console::invite_form))
                        .route(web::post().to(crate::console::invite)),
                )
                .service(post("/console/sign-out").to(crate::console::sign_out))
                .service(get("/console/campaigns").to(crate::console::campaigns))
                .service(get("/console/campaigns/{id}").to(crate::console::campaign))
                .service(get("/console/campaigns/{id}/report").to(crate::console::report))
                .service(get("/console/visits/{id}").to(crate::console::visit))
                .default_service(web::to(routes::not_found))
        })
        .workers(settings.workers.max(1))
        .client_request_timeout(settings.request_timeout)
        .shutdown_timeout(30);
        let server = match &settings.tls {
            Some((cert, key)) => server
                .listen_rustls_0_23(listener, tls_config(cert, key)?)
                .map_err(|e| StartError::Listen(settings.listen.clone(), e))?,
            None => server
                .listen(listener)
                .map_err(|e| StartError::Listen(settings.listen.clone(), e))?,
        }
        .run();
        let database = if settings.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        tracing::info!(port, data = %settings.data.display(), database, tls = settings.tls.is_some(), "kiemtra-server listening");
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until SIGINT/SIGTERM; in-flight requests are finished first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// A path of the route table and the methods it takes (`Allow`).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(routes::method_not_allowed(allow)))
}

/// A path that takes only GET.
fn get(path: &str) -> Route1 {
    Route1(resource(path, "GET"), web::get())
}

/// A path that takes only POST.
fn post(path: &str) -> Route1 {
    Route1(resource(path, "POST"), web::post())
}

/// A resource with its one method, waiting for its handler.
struct Route1(actix_web::Resource, actix_web::Route);

impl Route1 {
    fn to<F, Args>(self, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.0.route(self.1.to(handler))
    }
}

async fn log_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let res = next.call(req).await?;
    tracing::info!(%method, %path, status = res.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    Ok(res)
}
