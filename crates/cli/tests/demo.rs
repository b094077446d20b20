//! `kiemtra demo` runs the whole story and prints the Cần Thơ 2015 report
//! with the figures of "Thành phố Cần Thơ đẩy mạnh công tác kiểm tra giờ
//! giấc làm việc…" (Sở Nội vụ thành phố Cần Thơ, 2015).

use std::process::Command;

#[test]
fn the_demo_reproduces_the_campaign_figures() {
    // From a folder with no repository around it: the binary carries its
    // campaign and checklist.
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .arg("demo")
        .current_dir(dir.path())
        .output()
        .expect("run kiemtra demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stderr}");
    for expected in [
        "Số đơn vị đã kiểm tra (đã phê duyệt): **65**",
        "Tổng số CBCCVC trong biên chế: **1.404**",
        "Có mặt: 1.071 (76,28%)",
        "Vắng mặt: 333 (23,72%)",
        "đi công tác: 146 (43,84% số vắng)",
        "học chuyên môn, chính trị: 93 (27,93% số vắng)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        stderr.contains("3 xung đột"),
        "the demo produced and resolved real conflicts:\n{stderr}"
    );
    assert!(
        stderr.contains("10 ảnh bảng niêm yết đã tải lên"),
        "the inspectors' photos reached the server:\n{stderr}"
    );
    assert!(
        !stdout.contains("chưa được phê duyệt"),
        "every visit was approved"
    );
}

#[test]
fn the_demo_refuses_a_missing_campaign_file() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["demo", "--campaign", "nope.json"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading the campaign"));
}

#[test]
fn fixture_tally_runs_from_any_folder_and_from_a_file() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let built_in = run(&["fixture-tally", "--data", "a"]);
    assert!(
        built_in.contains("Tổng số CBCCVC trong biên chế: 1.404"),
        "{built_in}"
    );
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/campaigns/cantho-2015.json");
    let from_file = run(&[
        "fixture-tally",
        "--data",
        "b",
        "--campaign",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(
        built_in, from_file,
        "the file and the built-in campaign agree"
    );
}
