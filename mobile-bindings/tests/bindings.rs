//! Runs the generated bindings for real: the same scenario in Python, in
//! Kotlin on the JVM and in Swift, each against its own `kiemtra-server`
//! process on 127.0.0.1 port 0 with its own temporary folder.
//!
//! The cdylib, the server and `uniffi-bindgen` are built with the cargo
//! that runs this test (same profile). Kotlin needs `kotlinc` and JNA;
//! Swift a Debian trixie chroot with Debian's `swiftlang` (Debian 12 has no
//! Swift; the scenario is compiled and run inside it as root, the server
//! outside): `scripts/setup-bindings.sh` installs all of them (the README's
//! test command runs it); `KIEMTRA_KOTLINC`, `KIEMTRA_JNA_JAR` and
//! `KIEMTRA_SWIFT_ROOT` point elsewhere.
//!
//! Each scenario also meets the end-to-end harness's fault proxy
//! (`kiemtra-testworld`): one that loses the answer to the first
//! enrollment it carries (the phone must retry with the same key; checked
//! here afterwards: one answer lost, a retry made, one device listed for
//! that user) and one that carries enrollments and then hangs (a sync the
//! app cancels).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use kiemtra_testworld::{Proxy, ProxyMode};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds what the scenarios need once per test binary; returns the
/// profile's output folder.
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root())
            .args([
                "build",
                "-p",
                "kiemtra-server",
                "-p",
                "uniffi-bindgen",
                "-p",
                "kiemtra-mobile",
            ])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "building the server, bindgen and cdylib failed"
        );
        target_dir().join("debug")
    })
}

fn generate(language: &str, out: &Path) {
    let bin = built();
    // Run from outside the repository: the generator needs no Cargo project
    // around it.
    let status = Command::new(bin.join("uniffi-bindgen"))
        .current_dir(std::env::temp_dir())
        .args(["generate", "--library"])
        .arg(bin.join("libkiemtra_mobile.so"))
        .args(["--language", language, "--out-dir"])
        .arg(out)
        .status()
        .expect("run uniffi-bindgen");
    assert!(status.success(), "uniffi-bindgen {language} failed");
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let data = dir.join("server");
        let mut child = Command::new(built().join("kiemtra-server"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kiemtra-server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's port line");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            port,
            data,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fault proxies in front of one scenario's server, on a runtime of
/// their own (the test thread waits on the scenario process).
struct Faults {
    lossy: Proxy,
    stall: Proxy,
    _rt: tokio::runtime::Runtime,
}

impl Faults {
    fn start(server: &Server) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the proxies");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
        let (lossy, stall) = rt.block_on(async {
            let lossy = Proxy::start(addr).await;
            lossy.lose_next_answers(1);
            let stall = Proxy::start(addr).await;
            stall.set_mode(ProxyMode::StallExceptEnroll);
            (lossy, stall)
        });
        Self {
            lossy,
            stall,
            _rt: rt,
        }
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("KIEMTRA_LOSSY_URL", self.lossy.url())
            .env("KIEMTRA_STALL_URL", self.stall.url());
    }

    /// After the scenario: the lossy proxy lost one enrollment answer, the
    /// phone asked again, and the server lists one device for `user`.
    fn check(&self, server: &Server, user: &str) {
        let lost = self.lossy.lost.load(Ordering::SeqCst);
        let connections = self.lossy.connections.load(Ordering::SeqCst);
        assert_eq!(lost, 1, "the proxy should have lost one enrollment answer");
        assert!(
            connections >= 2,
            "the phone did not retry its enrollment ({connections} connection)"
        );
        let out = Command::new(built().join("kiemtra-server"))
            .arg("--data")
            .arg(&server.data)
            .arg("devices")
            .output()
            .expect("kiemtra-server devices");
        let listed = String::from_utf8_lossy(&out.stdout);
        let lines = listed.lines().filter(|l| l.contains(user)).count();
        assert_eq!(
            lines, 1,
            "one device for {user} after the lost answer, not {lines}:\n{listed}"
        );
    }
}

fn scenario_env(cmd: &mut Command, server: &Server, team: &str, work: &Path) {
    cmd.env("KIEMTRA_SERVER_URL", &server.url)
        .env("KIEMTRA_SERVER_BIN", built().join("kiemtra-server"))
        .env("KIEMTRA_SERVER_DATA", &server.data)
        .env("KIEMTRA_TEAM", team)
        .env(
            "KIEMTRA_TEMPLATE",
            root().join("fixtures/templates/standard-v1.json"),
        )
        .env("KIEMTRA_WORKDIR", work);
}

/// Runs a scenario, shows its output and checks its count line.
fn run_scenario(label: &str, mut cmd: Command) {
    let out = cmd.output().expect("run the scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let prefix = format!("bindings[{label}]: ");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the {label} scenario printed no count line"));
    let counts: Vec<u32> = line[prefix.len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        counts.len() >= 2,
        "unreadable count line {line:?} from the {label} scenario"
    );
    assert_eq!(counts[1], 0, "{line}");
    assert!(counts[0] >= 40, "too few checks ran: {line}");
    assert!(
        out.status.success(),
        "the {label} scenario exited with {}",
        out.status
    );
}

#[test]
fn python_scenario_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let module = dir.path().join("python");
    generate("python", &module);
    std::fs::copy(
        built().join("libkiemtra_mobile.so"),
        module.join("libkiemtra_mobile.so"),
    )
    .expect("copy the cdylib beside the module");
    let server = Server::start(dir.path());
    let faults = Faults::start(&server);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("workdir");
    let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    cmd.arg(root().join("mobile-bindings/tests/python/scenario.py"))
        .env("PYTHONPATH", &module);
    scenario_env(&mut cmd, &server, "team-py", &work);
    faults.env(&mut cmd);
    run_scenario("python", cmd);
    faults.check(&server, "insp-py-lost");
}

fn kotlinc() -> PathBuf {
    if let Some(p) = std::env::var_os("KIEMTRA_KOTLINC") {
        return p.into();
    }
    let local = target_dir().join("tools/node_modules/kotlin-compiler/bin/kotlinc");
    assert!(
        local.exists(),
        "kotlinc not found at {}: run `bash scripts/setup-bindings.sh` (or set KIEMTRA_KOTLINC)",
        local.display()
    );
    local
}

fn jna_jar() -> PathBuf {
    let p: PathBuf = std::env::var_os("KIEMTRA_JNA_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/share/java/jna.jar".into());
    assert!(
        p.exists(),
        "JNA not found at {}: run `bash scripts/setup-bindings.sh` (Debian's libjna-java) or set KIEMTRA_JNA_JAR",
        p.display()
    );
    p
}

#[test]
fn kotlin_scenario_against_a_real_server() {
    let kotlinc = kotlinc();
    let jna = jna_jar();
    let coroutines = kotlinc
        .parent()
        .and_then(Path::parent)
        .map(|home| home.join("lib/kotlinx-coroutines-core-jvm.jar"))
        .filter(|p| p.exists())
        .expect("kotlinx-coroutines-core-jvm.jar in the Kotlin distribution's lib/");
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = dir.path().join("kotlin");
    generate("kotlin", &generated);
    let sources: Vec<PathBuf> = walk(&generated, "kt");
    assert!(!sources.is_empty(), "no Kotlin generated");
    let jar = dir.path().join("scenario.jar");
    let classpath = format!("{}:{}", jna.display(), coroutines.display());
    let status = Command::new(&kotlinc)
        .args(&sources)
        .arg(root().join("mobile-bindings/tests/kotlin/Scenario.kt"))
        .args(["-nowarn", "-include-runtime", "-cp", &classpath, "-d"])
        .arg(&jar)
        .status()
        .expect("run kotlinc");
    assert!(status.success(), "kotlinc failed");

    let server = Server::start(dir.path());
    let faults = Faults::start(&server);
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("workdir");
    let mut cmd = Command::new("java");
    cmd.arg(format!("-Djna.library.path={}", built().display()))
        .arg("-cp")
        .arg(format!("{}:{classpath}", jar.display()))
        .arg("ScenarioKt");
    scenario_env(&mut cmd, &server, "team-kt", &work);
    faults.env(&mut cmd);
    run_scenario("kotlin", cmd);
    faults.check(&server, "insp-kt-lost");
}

fn walk(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p, ext));
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out
}

/// `/proc` mounted in the chroot for as long as this lives (swiftc needs
/// it), unmounted again if this mounted it.
struct ProcMount(Option<PathBuf>);

impl Drop for ProcMount {
    fn drop(&mut self) {
        if let Some(proc_dir) = self.0.take() {
            let _ = Command::new("umount").arg(&proc_dir).status();
        }
    }
}

/// The Debian trixie chroot with Debian's swiftlang that
/// `scripts/setup-bindings.sh` makes (Debian 12 has no Swift), with `/proc`
/// mounted in it.
fn swift_root() -> (PathBuf, ProcMount) {
    let root: PathBuf = std::env::var_os("KIEMTRA_SWIFT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("tools/swift-trixie"));
    assert!(
        root.join("usr/libexec/swift/bin/swiftc").exists(),
        "no Swift chroot at {}: run `bash scripts/setup-bindings.sh` as root (or set KIEMTRA_SWIFT_ROOT)",
        root.display()
    );
    let mut mounted = ProcMount(None);
    if !root.join("proc/self").exists() {
        let status = Command::new("mount")
            .args(["-t", "proc", "proc"])
            .arg(root.join("proc"))
            .status()
            .expect("mount /proc in the Swift chroot");
        assert!(
            status.success(),
            "mounting /proc in the Swift chroot failed"
        );
        mounted.0 = Some(root.join("proc"));
    }
    (root, mounted)
}

/// A folder inside the chroot, removed when dropped; `inside` is its path
/// as the chroot sees it.
struct ChrootDir {
    host: PathBuf,
    inside: String,
}

impl ChrootDir {
    fn new(root: &Path) -> Self {
        let name = format!(
            "kiemtra-swift-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let host = root.join("tmp").join(&name);
        std::fs::create_dir_all(host.join("work")).expect("a folder in the chroot");
        Self {
            host,
            inside: format!("/tmp/{name}"),
        }
    }
}

impl Drop for ChrootDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.host);
    }
}

fn enrollment_code(server: &Server, user: &str, team: &str, role: &str) -> String {
    let out = Command::new(built().join("kiemtra-server"))
        .arg("--data")
        .arg(&server.data)
        .args([
            "enroll-code",
            "--user",
            user,
            "--team",
            team,
            "--role",
            role,
        ])
        .output()
        .expect("enroll-code");
    assert!(out.status.success(), "enroll-code failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn swift_scenario_against_a_real_server() {
    let (chroot, _proc) = swift_root();
    let dir = ChrootDir::new(&chroot);
    let gen_dir = dir.host.join("gen");
    generate("swift", &gen_dir);
    std::fs::copy(
        built().join("libkiemtra_mobile.so"),
        gen_dir.join("libkiemtra_mobile.so"),
    )
    .expect("copy the cdylib into the chroot");
    std::fs::copy(
        root().join("mobile-bindings/tests/swift/Scenario.swift"),
        dir.host.join("main.swift"),
    )
    .expect("copy the scenario");
    std::fs::copy(
        root().join("fixtures/templates/standard-v1.json"),
        dir.host.join("template.json"),
    )
    .expect("copy the template");
    let inside = &dir.inside;
    // swiftc by its real path: it finds its runtime relative to itself.
    let status = Command::new("chroot")
        .arg(&chroot)
        .arg("/usr/libexec/swift/bin/swiftc")
        .args(["-module-cache-path", &format!("{inside}/mc")])
        .args(["-I", &format!("{inside}/gen")])
        .args([
            "-Xcc",
            &format!("-fmodule-map-file={inside}/gen/kiemtra_mobileFFI.modulemap"),
        ])
        .arg(format!("{inside}/gen/kiemtra_mobile.swift"))
        .arg(format!("{inside}/main.swift"))
        .args(["-L", &format!("{inside}/gen"), "-lkiemtra_mobile"])
        .args(["-o", &format!("{inside}/scenario")])
        .status()
        .expect("run swiftc in the chroot");
    assert!(status.success(), "swiftc failed");

    let server = Server::start(&dir.host);
    let faults = Faults::start(&server);
    let team = "team-sw";
    let codes: Vec<String> = [
        ("insp-sw-a", "inspector"),
        ("insp-sw-a", "inspector"),
        ("insp-sw-b", "inspector"),
        ("sup-sw", "supervisor"),
        ("insp-sw-lost", "inspector"),
        ("insp-sw-key", "inspector"),
        ("insp-sw-stall", "inspector"),
    ]
    .iter()
    .map(|(user, role)| format!("{user}={}", enrollment_code(&server, user, team, role)))
    .collect();
    let mut cmd = Command::new("chroot");
    cmd.arg(&chroot)
        .arg(format!("{inside}/scenario"))
        .env("LD_LIBRARY_PATH", format!("{inside}/gen"))
        .env("KIEMTRA_SERVER_URL", &server.url)
        .env("KIEMTRA_TEAM", team)
        .env("KIEMTRA_WORKDIR", format!("{inside}/work"))
        .env("KIEMTRA_TEMPLATE", format!("{inside}/template.json"))
        .env("KIEMTRA_CODES", codes.join(","));
    faults.env(&mut cmd);
    run_scenario("swift", cmd);
    faults.check(&server, "insp-sw-lost");
}
