//! What people typed is printed escaped by the desk tool: a device name, a
//! unit's or a person's name holding a terminal escape and a line break
//! neither acts on the terminal nor forges a row.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Server {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let data = dir.join("server");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kiemtra serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let port = line
        .trim()
        .strip_prefix("listening on port ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .to_owned();
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        data,
    }
}

fn kiemtra(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run kiemtra")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kiemtra failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const TRAP: &str = "\x1b[2J\nforged";
const SHOWN: &str = "\\u{1b}[2J\\nforged";

#[test]
fn names_with_terminal_escapes_are_printed_as_visible_escapes() {
    let dir = tempfile::tempdir().expect("dir");
    let server = serve(dir.path());
    let code = ok(&Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["admin", "--data"])
        .arg(&server.data)
        .args([
            "enroll-code",
            "--user",
            "truong-doan",
            "--team",
            "team-1",
            "--role",
            "supervisor",
        ])
        .output()
        .expect("admin"))
    .trim()
    .to_owned();
    let desk = dir.path().join("desk");
    let name = format!("desk{TRAP}");
    ok(&kiemtra(
        &desk,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code,
            "--name",
            &name,
        ],
    ));

    let devices = ok(&Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["admin", "--data"])
        .arg(&server.data)
        .arg("devices")
        .output()
        .expect("admin devices"));
    assert!(!devices.contains('\x1b'), "{devices:?}");
    assert_eq!(
        devices.lines().count(),
        2,
        "a header and one row: {devices:?}"
    );
    assert!(devices.contains(&format!("desk{SHOWN}")), "{devices:?}");

    // A unit and a person named with the same trap, assigned from a roster.
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        format!(
            "unit_code,unit_name,unit_kind,area,staff_id,staff_name,position,category,on_payroll\n\
             u-01,\"Sở{TRAP}\",department,TP Cần Thơ,s-001,\"Võ{TRAP}\",Chuyên viên,civil_servant,yes\n"
        ),
    )
    .expect("roster");
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/templates/standard-v1.json");
    ok(&kiemtra(
        &desk,
        &[
            "assign",
            "--campaign",
            "ct-2015",
            "--csv",
            roster.to_str().expect("path"),
            "--date",
            "2015-08-31",
            "--template",
            template.to_str().expect("path"),
        ],
    ));
    let visits = ok(&kiemtra(&desk, &["visits"]));
    assert!(!visits.contains('\x1b'), "{visits:?}");
    assert_eq!(visits.lines().count(), 2, "{visits:?}");
    assert!(visits.contains(&format!("Sở{SHOWN}")), "{visits:?}");
    let id = visits
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').next())
        .expect("visit id")
        .to_owned();
    let shown = ok(&kiemtra(&desk, &["show", &id, "--lang", "en"]));
    assert!(!shown.contains('\x1b'), "{shown:?}");
    assert!(shown.contains(&format!("Sở{SHOWN}")), "{shown:?}");
    assert!(shown.contains(&format!("Võ{SHOWN}")), "{shown:?}");
    assert!(
        !shown.lines().any(|l| l.starts_with("forged")),
        "no line is forged: {shown:?}"
    );
}
