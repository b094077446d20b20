"""The inspector/supervisor scenario through the generated Python bindings,
against a real kiemtra-server process.

Run by mobile-bindings/tests/bindings.rs, which starts the server and sets:
KIEMTRA_SERVER_URL, KIEMTRA_SERVER_BIN, KIEMTRA_SERVER_DATA, KIEMTRA_TEAM,
KIEMTRA_TEMPLATE (a template JSON file), KIEMTRA_WORKDIR (a fresh folder), and
the fault proxies of the end-to-end harness in front of the same server:
KIEMTRA_LOSSY_URL (loses the answer to the first enrollment it carries) and
KIEMTRA_STALL_URL (carries enrollments, then hangs every other request).
PYTHONPATH holds the generated module, with the cdylib beside it.

Prints `bindings[python]: N passed, M failed` and exits non-zero when any
check fails.
"""

import asyncio
import glob
import hashlib
import os
import subprocess
import sys
import threading
import time

import kiemtra_mobile as km

PASSED = 0
FAILED = 0


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print(f"FAIL {name} {detail}", flush=True)


def raises(name, kind, fn):
    """Checks that fn() raises ApiError.<kind>; returns the error."""
    try:
        fn()
    except km.ApiError as e:  # every variant derives from ApiError
        ok = isinstance(e, getattr(km.ApiError, kind))
        check(name, ok, f"raised {e!r}, expected ApiError.{kind}")
        return e
    except Exception as e:  # noqa: BLE001 - anything else is a failure
        check(name, False, f"raised non-API error {e!r}")
        return e
    check(name, False, f"did not raise ApiError.{kind}")
    return None


ENV = os.environ
URL = ENV.get("KIEMTRA_SERVER_URL", "")
SERVER_BIN = ENV.get("KIEMTRA_SERVER_BIN", "")
SERVER_DATA = ENV.get("KIEMTRA_SERVER_DATA", "")
TEAM = ENV.get("KIEMTRA_TEAM", "team-py")
WORK = ENV.get("KIEMTRA_WORKDIR", "")
LOSSY_URL = ENV.get("KIEMTRA_LOSSY_URL", "")
STALL_URL = ENV.get("KIEMTRA_STALL_URL", "")
QUICK = km.RetryPolicy(timeout_ms=10_000, max_attempts=6, base_backoff_ms=50, max_backoff_ms=500)


def enrollment_code(user, role):
    out = subprocess.run(
        [SERVER_BIN, "--data", SERVER_DATA, "enroll-code", "--user", user,
         "--team", TEAM, "--role", role],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def attendance_of(view, staff_id):
    for s in view.staff:
        if s.id == staff_id:
            return (s.attendance, s.absence_reason)
    return None


class Listener(km.SyncListener):
    def __init__(self):
        self.calls = []

    def on_progress(self, progress):
        self.calls.append(progress)


def child_records(path, count_file):
    """Child mode: records findings forever, acknowledging each on stdout;
    a timer thread ends the process with os._exit in the middle."""
    store = km.DeviceStore.open(path)
    visit = store.open_visit(open(count_file).read().strip())
    threading.Timer(0.4, lambda: os._exit(9)).start()
    i = 0
    while True:
        visit.add_finding(km.FindingInput(
            category="kill-test", severity="minor", text=f"kill-test {i}",
            recommendation="", related_staff=[]))
        print(f"ack {i}", flush=True)
        i += 1


class MemoryKeyStore(km.KeyStore):
    """An app's own key store (Android Keystore, the iOS Keychain), here a
    dict; `fail` makes it refuse to keep keys (a locked keychain)."""

    def __init__(self, fail=False):
        self.keys = {}
        self.fail = fail

    def save_key(self, alias, key):
        if self.fail:
            raise km.KeyStoreError.Failed(detail="the keychain is locked")
        self.keys[alias] = bytes(key)

    def load_key(self, alias):
        return self.keys.get(alias)

    def delete_key(self, alias):
        self.keys.pop(alias, None)


def small_visit(code):
    return km.NewVisitInput(
        unit_code=code, unit_name="UBND phường Cái Khế", unit_kind="commune_committee",
        area="Ninh Kiều", campaign="cantho-2015", scheduled_on="2015-09-01",
        roster=[km.StaffInput(id="k-1", name="Đỗ Thị Hoa", position="Công chức tư pháp",
                              category="civil_servant", on_payroll=True)])


async def async_and_key_store(template):
    # A key store that cannot keep the key stops the enrollment before
    # anything is sent: the code is not used up.
    k_path = os.path.join(WORK, "phone-k", "store.db")
    code = enrollment_code("insp-py-key", "inspector")
    try:
        await km.enroll_async(k_path, URL, code, "Điện thoại K", key_store=MemoryKeyStore(fail=True))
        check("a failing key store stops the enrollment", False, "enrolled")
    except km.ApiError.KeyStore as e:
        check("a failing key store stops the enrollment, saying why", "locked" in str(e), str(e))
    keys = MemoryKeyStore()
    k = await km.enroll_async(k_path, URL, code, "Điện thoại K", key_store=keys)
    check("the same code then enrolls (await enroll_async)", k.identity().user_id == "insp-py-key",
          repr(k.identity()))
    aliases = list(keys.keys)
    check("the app's key store holds the device key",
          len(aliases) == 1 and aliases[0].startswith("kiemtra-device-"), repr(aliases))
    key = keys.keys[aliases[0]] if aliases else b"?"
    on_disk = b"".join(open(f, "rb").read() for f in glob.glob(k_path + "*"))
    check("the store's files do not hold the key",
          key.hex().encode() not in on_disk and key not in on_disk)
    kv = k.create_visit(small_visit("ubnd-phuong-cai-khe"), template)
    kv.record_attendance("k-1", "present")
    report = await k.sync_async()
    check("a sync signed with the app-kept key is accepted (await sync_async)",
          report.visits_uploaded == 1 and not report.errors, str(report))
    k.close_store()
    raises("opening without the app's key store is refused", "KeyStore",
           lambda: km.DeviceStore.open(k_path))
    raises("a key store without the key is refused", "KeyStore",
           lambda: km.DeviceStore.open(k_path, MemoryKeyStore()))
    wrong = MemoryKeyStore()
    wrong.keys[aliases[0] if aliases else "x"] = b"\x30" * 83
    raises("a key store holding something else under the alias is refused", "KeyStore",
           lambda: km.DeviceStore.open(k_path, key_store=wrong))
    k = km.DeviceStore.open(k_path, key_store=keys)
    k.open_visit(kv.id()).record_attendance("k-1", "late", note="đến 8 giờ")
    report = await k.sync_async(upload_evidence=False)
    check("reopened with its key store, the device signs what the server accepts",
          report.visits_uploaded == 1 and not report.errors and report.evidence is None, str(report))
    check("await refresh_team_async", await k.refresh_team_async() >= 1)
    up = await k.upload_evidence_async()
    check("await upload_evidence_async with nothing waiting", up.uploaded == 0 and not up.errors, str(up))

    # A sync on a link that hangs, given up by cancelling its task.
    st_path = os.path.join(WORK, "phone-stall", "store.db")
    st = await km.enroll_async(st_path, STALL_URL, enrollment_code("insp-py-stall", "inspector"),
                               "Điện thoại mất sóng")
    st.set_retry_policy(km.RetryPolicy(timeout_ms=600_000, max_attempts=1, base_backoff_ms=100,
                                       max_backoff_ms=100))
    sv = st.create_visit(small_visit("ubnd-xa-thoi-an"), template)
    sv.record_attendance("k-1", "absent", "sick")
    task = asyncio.ensure_future(st.sync_async())
    await asyncio.sleep(0.5)
    check("the sync waits on the hung link", not task.done())
    task.cancel()
    try:
        await task
        check("cancelling the task cancels the sync", False, "the sync finished")
    except asyncio.CancelledError:
        check("cancelling the task cancels the sync", True)
    # The call itself stopped and let go of the store: a blocking call on
    # another thread gets it (it would wait for the sync otherwise).
    seen = {}
    t = threading.Thread(target=lambda: seen.setdefault("n", len(st.list_visits())), daemon=True)
    t.start()
    t.join(120)
    check("the cancelled call let go of the store", seen.get("n") == 1, repr(seen))
    token = km.CancelToken()
    task = asyncio.ensure_future(st.sync_async(cancel=token))
    await asyncio.sleep(0.3)
    token.cancel()
    try:
        await asyncio.wait_for(task, 120)
        check("a token cancels an async sync", False, "the sync finished")
    except km.ApiError.Cancelled:
        check("a token cancels an async sync (ApiError.Cancelled)", True)
    check("what was recorded before the cancelled syncs is kept",
          attendance_of(st.open_visit(sv.id()).state(), "k-1") == ("absent", "sick"))
    check("and still waits for the server", st.list_visits()[0].status == "draft")


def valued_checks(store):
    """Office checks that record a number, a choice or a text (the CCHC
    checklist, version 2), recorded, refused when they do not fit, shown and
    synced."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "..", "fixtures", "templates", "cchc-v2.json"),
              encoding="utf-8") as f:
        cchc = f.read()
    v = store.create_visit(small_visit("ubnd-xa-nhon-ai"), cchc)
    v.record_check_number("satisfaction-rate", "pass", 96, "theo thiết bị đánh giá")
    v.record_check_number("ratings-collected", "pass", 12000)
    v.record_check_choice("one-stop-mode", "pass", "modern")
    v.record_check_text("e-office-software", "pass", "VNPT iOffice")
    v.record_check("cchc-plan-issued", "pass")
    raises("a number out of its range is refused", "Invalid",
           lambda: v.record_check_number("satisfaction-rate", "pass", 101))
    raises("an option the check does not offer is refused", "Invalid",
           lambda: v.record_check_choice("one-stop-mode", "pass", "luxury"))
    raises("a value of another kind is refused", "Invalid",
           lambda: v.record_check_text("satisfaction-rate", "pass", "96"))
    raises("a valued check passed without its value is refused", "Invalid",
           lambda: v.record_check("satisfaction-rate", "pass"))
    raises("a value on a pass/fail check is refused", "Invalid",
           lambda: v.record_check_number("cchc-plan-issued", "pass", 1))
    checks = {c.id: c for c in v.state().checks}
    rate = checks["satisfaction-rate"]
    check("a number check shows its kind, range, unit and value",
          (rate.kind, rate.min, rate.max, rate.unit_vi, rate.number, rate.value_vi)
          == ("number", 0, 100, "%", 96, "96%"), repr(rate))
    check("a count is shown with its separators",
          checks["ratings-collected"].value_vi == "12.000 lượt", repr(checks["ratings-collected"]))
    mode = checks["one-stop-mode"]
    check("a choice check shows its options and the one chosen",
          [o.id for o in mode.options] == ["modern", "standard", "none"]
          and mode.choice == "modern" and mode.value_en == "Modern (electronic) one-stop",
          repr(mode))
    check("a text check shows its text", checks["e-office-software"].text == "VNPT iOffice")
    plan = checks["cchc-plan-issued"]
    check("a pass/fail check has no value",
          plan.kind == "pass_fail" and plan.number is None and plan.value_vi is None, repr(plan))
    report = store.sync()
    check("a visit with valued checks is accepted by the server",
          report.visits_uploaded >= 1 and not report.errors, str(report))


def main():
    template = open(ENV["KIEMTRA_TEMPLATE"], encoding="utf-8").read()
    a_path = os.path.join(WORK, "phone-a", "store.db")
    b_path = os.path.join(WORK, "phone-b", "store.db")
    s_path = os.path.join(WORK, "phone-s", "store.db")

    # --- enroll ---------------------------------------------------------
    code_a = enrollment_code("insp-py-a", "inspector")
    a = km.enroll(a_path, URL, code_a, "Điện thoại A")
    ident = a.identity()
    check("enroll gives the inspector's identity",
          ident.user_id == "insp-py-a" and ident.role == "inspector" and ident.team == TEAM,
          repr(ident))
    raises("a used enrollment code is refused", "Refused",
           lambda: km.enroll(os.path.join(WORK, "x", "s.db"), URL, code_a, "again"))
    raises("enrolling a store twice is refused", "AlreadyEnrolled",
           lambda: km.enroll(a_path, URL, enrollment_code("insp-py-a", "inspector"), "twice"))
    raises("opening a store never enrolled", "NotEnrolled",
           lambda: km.DeviceStore.open(os.path.join(WORK, "never", "s.db")))

    # --- an enrollment whose answer is lost is retried with the same key --
    # (through the harness's proxy, which loses the first answer it carries;
    # bindings.rs checks afterwards that it did and that the phone retried)
    lost = km.enroll(os.path.join(WORK, "phone-lost", "store.db"), LOSSY_URL,
                     enrollment_code("insp-py-lost", "inspector"), "Điện thoại vùng sâu",
                     retry_policy=QUICK)
    check("an enrollment whose answer was lost succeeds on its retry",
          lost.identity().user_id == "insp-py-lost", repr(lost.identity()))
    listed = subprocess.run([SERVER_BIN, "--data", SERVER_DATA, "devices"],
                            capture_output=True, text=True, timeout=60).stdout
    check("the retry left no orphan device: one device for that user",
          listed.count("insp-py-lost") == 1, listed)
    check("the device the phone holds is the one the server lists",
          lost.identity().device_id in listed, listed)

    # --- create and record offline ---------------------------------------
    roster = [
        km.StaffInput(id="s-1", name="Nguyễn Văn An", position="Chánh Văn phòng",
                      category="leader", on_payroll=True),
        km.StaffInput(id="s-2", name="Trần Thị Bình", position="Văn thư",
                      category="civil_servant", on_payroll=True),
        km.StaffInput(id="s-3", name="Lê Văn Cường", position="Kế toán",
                      category="civil_servant", on_payroll=True),
        km.StaffInput(id="s-4", name="Phạm Thị Dung", position="Tạp vụ",
                      category="contract", on_payroll=False),
    ]
    new = km.NewVisitInput(
        unit_code="ubnd-xa-an-binh", unit_name="UBND xã An Bình",
        unit_kind="commune_committee", area="Ninh Kiều", campaign="cantho-2015",
        scheduled_on="2015-08-31", roster=roster)
    raises("a visit with an unknown unit kind is refused", "Invalid",
           lambda: a.create_visit(km.NewVisitInput(
               unit_code="u-x", unit_name="X", unit_kind="castle", area="",
               campaign="c", scheduled_on="2015-08-31", roster=[]), template))
    visit = a.create_visit(new, template)
    vid = visit.id()
    check("a new visit has an id", vid.startswith("v-"), vid)
    visit.record_attendance("s-1", "present")  # reason, note and time by default
    visit.record_attendance("s-2", "late", None, "đến 7 giờ 45", "2015-08-31T00:45:00Z")
    visit.record_attendance("s-3", "absent", "business_trip", "đi Hà Nội", None)
    raises("absent without a reason is refused", "Invalid",
           lambda: visit.record_attendance("s-1", "absent", None, "", None))
    raises("an unknown staff member is refused", "NotFound",
           lambda: visit.record_attendance("s-99", "present", None, "", None))
    raises("a malformed time is refused", "Invalid",
           lambda: visit.record_attendance("s-1", "present", None, "", "yesterday"))
    visit.record_conduct("s-1", "badge", "violation", "không đeo thẻ")
    visit.record_conduct("s-2", "attire", "compliant", "")
    raises("an unknown conduct check is refused", "Invalid",
           lambda: visit.record_conduct("s-1", "hat", "violation", ""))
    visit.record_check("tthc-posted", "pass", "niêm yết đủ")
    visit.record_check("hotline", "fail", "không có số đường dây nóng")
    raises("an unknown office check is refused", "NotFound",
           lambda: visit.record_check("no-such-check", "pass", ""))
    photo = "ab" * 32
    visit.attach_evidence("hotline", photo)
    visit.attach_evidence("hotline", "cd" * 32)
    visit.detach_evidence("hotline", "cd" * 32)
    raises("a malformed photo hash is refused", "Invalid",
           lambda: visit.attach_evidence("hotline", "not-a-hash"))
    visit.add_staff(km.StaffInput(id="s-5", name="Võ Văn Em", position="Bảo vệ",
                                  category="contract", on_payroll=False))
    fid = visit.add_finding(km.FindingInput(
        category="tthc", severity="moderate", text="Chưa niêm yết số điện thoại đường dây nóng",
        recommendation="Niêm yết trong tuần", related_staff=["s-1"]))
    visit.update_finding(fid, "severity", "serious")
    visit.update_finding(fid, "related_staff", "s-1, s-2")
    raises("an unknown finding field is refused", "Invalid",
           lambda: visit.update_finding(fid, "colour", "red"))
    raises("an unknown finding is refused", "NotFound",
           lambda: visit.update_finding("f-nope", "text", "x"))
    visit.set_narrative("Đoàn đến lúc 7 giờ 30.")
    visit.splice_narrative(len("Đoàn đến lúc 7 giờ 30"), 0, " sáng")
    raises("a narrative splice out of range is refused", "Invalid",
           lambda: visit.splice_narrative(10_000, 1, "x"))

    view = visit.state()
    check("staff in roster order, then those found on site, numbered",
          [(x.roster_index, x.id) for x in view.staff]
          == [(1, "s-1"), (2, "s-2"), (3, "s-3"), (4, "s-4"), (5, "s-5")],
          repr([(x.roster_index, x.id) for x in view.staff]))
    check("attendance recorded", attendance_of(view, "s-3") == ("absent", "business_trip"),
          repr(attendance_of(view, "s-3")))
    check("NFC text kept", view.staff[0].name == "Nguyễn Văn An", view.staff[0].name)
    check("narrative spliced", view.narrative == "Đoàn đến lúc 7 giờ 30 sáng.", view.narrative)
    check("evidence is a set", [c.evidence for c in view.checks if c.id == "hotline"] == [[photo]])
    check("finding updated",
          [(f.severity, f.related_staff) for f in view.findings] == [("serious", ["s-1", "s-2"])])
    check("found-on-site staff added", any(s.id == "s-5" and s.found_on_site for s in view.staff))
    check("conduct recorded",
          [(c.check, c.result) for s in view.staff if s.id == "s-1" for c in s.conduct]
          == [("badge", "violation")])
    t = visit.tally()
    check("tally counts the payroll only",
          (t.payroll, t.present, t.late, t.absent, t.unrecorded) == (3, 2, 1, 1, 0),
          repr(t))
    check("tally percentages", (t.present_pct, t.present_text, t.absent_text) == (6667, "66,67%", "33,33%"),
          repr(t))
    listing = a.list_visits()
    check("listing shows the visit with its tally",
          len(listing) == 1 and listing[0].id == vid and listing[0].tally.absent == 1
          and listing[0].status == "draft", repr(listing))

    # --- close, reopen ---------------------------------------------------
    a.close_store()
    raises("a closed store refuses calls", "Closed", lambda: a.list_visits())
    raises("a visit of a closed store refuses calls", "Closed", lambda: visit.state())
    a = km.DeviceStore.open(a_path)
    visit = a.open_visit(vid)
    check("reopened store keeps every edit", visit.state() == view)
    raises("an unknown visit is refused", "NotFound", lambda: a.open_visit("v-nosuchvisit"))
    raises("a malformed visit id is refused", "Invalid", lambda: a.open_visit("no spaces allowed"))

    # --- sync, second device ---------------------------------------------
    listener = Listener()
    token = km.CancelToken()
    report = a.sync(listener, token)
    check("upload carries the visit", report.visits_uploaded == 1 and not report.errors, repr(report))
    check("progress reported", len(listener.calls) >= 1 and listener.calls[-1].bytes_sent > 0,
          repr(listener.calls))
    check("token not cancelled", not token.is_cancelled())
    b = km.enroll(b_path, URL, enrollment_code("insp-py-b", "inspector"), "Điện thoại B")
    report = b.sync(None, None)
    check("second device receives the visit", report.visits_downloaded == 1, repr(report))
    listed = b.list_visits()
    check("the received visit is listed before it is opened",
          [v.id for v in listed] == [vid], repr(listed))
    checked = b.verify_received()
    check("idle check loads the received visit", checked.verified == 1 and checked.removed == [],
          repr(checked))
    check("nothing left to check", b.verify_received().verified == 0)
    vb = b.open_visit(vid)
    check("second device holds the same visit", vb.state() == visit.state())
    check("same heads on both", sorted(vb.heads()) == sorted(visit.heads()))

    # --- the same person recorded differently offline --------------------
    visit.record_attendance("s-1", "absent", "training", "học chính trị", None)
    vb.record_attendance("s-1", "late", None, "", None)
    a.sync(None, None)
    b.sync(None, None)
    a.sync(None, None)
    ca, cb = visit.conflicts(), vb.conflicts()
    check("conflict listed on A", [c.field for c in ca] == ["attendance/s-1"], repr(ca))
    check("the same conflict on B", [(c.field, len(c.candidates)) for c in cb]
          == [("attendance/s-1", 2)], repr(cb))
    check("conflict candidates carry authors",
          sorted(c.by for c in cb[0].candidates) == ["insp-py-a", "insp-py-b"] if cb else False)
    check("conflict described in Vietnamese",
          bool(cb) and cb[0].label_vi.startswith("Điểm danh Nguyễn Văn An"), repr(cb))
    raises("an inspector may not settle a conflict", "NotAllowed",
           lambda: vb.resolve("attendance/s-1", 0))
    raises("a malformed field is refused", "Invalid", lambda: vb.resolve("nothing/here/x/y", 0))

    s = km.enroll(s_path, URL, enrollment_code("sup-py", "supervisor"), "Trưởng đoàn")
    s.sync(None, None)
    vs = s.open_visit(vid)
    cs = vs.conflicts()
    check("supervisor sees the conflict", len(cs) == 1, repr(cs))
    pick = [i for i, c in enumerate(cs[0].candidates) if c.value_en.startswith("absent")][0] if cs else 0
    raises("a candidate out of range is refused", "Invalid", lambda: vs.resolve("attendance/s-1", 9))
    raises("no conflict on a quiet field", "NotFound", lambda: vs.resolve("attendance/s-2", 0))
    vs.resolve("attendance/s-1", pick)
    s.sync(None, None)
    a.sync(None, None)
    b.sync(None, None)
    check("resolution reaches A", visit.conflicts() == [] and
          attendance_of(visit.state(), "s-1") == ("absent", "training"))
    check("resolution reaches B", vb.conflicts() == [] and vb.state() == visit.state())

    # --- merging on site by bundle files (no network for the exchange) ---
    check("A learns its team's devices and keys", a.refresh_team() >= 3)
    check("B too", b.refresh_team() >= 3)
    visit.record_attendance("s-2", "present", None, "", None)
    vb.record_attendance("s-2", "present", None, "tổ 2 ghi nhận", None)
    from_b = b.write_bundle([vid])
    check("a bundle starts with KTBN", bytes(from_b[:4]) == b"KTBN", repr(from_b[:8]))
    raises("a cut-short bundle is refused", "Invalid", lambda: a.read_bundle(from_b[:-3]))
    raises("a non-bundle is refused", "Invalid", lambda: a.read_bundle(b"not a bundle"))
    got = a.read_bundle(from_b)
    check("A reads B's bundle", got.updated == [vid] and got.new_changes >= 1, repr(got))
    back = b.read_bundle(a.write_bundle([]))
    check("B reads A's", vid in back.updated, repr(back))
    check("both show the same visit after the exchange", visit.state() == vb.state())
    check("the same mark by both groups is no conflict", visit.conflicts() == [],
          repr(visit.conflicts()))
    again = a.read_bundle(from_b)
    check("reading a bundle twice adds nothing", again.new_changes == 0, repr(again))
    b.sync(None, None)
    a.sync(None, None)
    check("after a sync the server's copy matches", sorted(vb.heads()) == sorted(visit.heads()))

    # --- submit, return, approve -----------------------------------------
    raises("an inspector may not approve", "NotAllowed", lambda: visit.approve("ok"))
    raises("a draft cannot be approved", "Invalid", lambda: vs.approve("ok"))
    visit.submit("xong")
    a.sync(None, None)
    s.sync(None, None)
    raises("a return needs a reason", "Invalid", lambda: vs.return_visit(""))
    vs.return_visit("bổ sung ảnh")
    s.sync(None, None)
    a.sync(None, None)
    check("returned visit reaches A", visit.state().status == "returned"
          and visit.state().status_note == "bổ sung ảnh", visit.state().status)
    pic = bytes(range(256)) * 1200
    sha = visit.add_evidence("tthc-posted", pic)
    check("a photo is named by its SHA-256", sha == hashlib.sha256(pic).hexdigest(), sha)
    check("the photo is referenced from its check",
          [c.evidence for c in visit.state().checks if c.id == "tthc-posted"] == [[sha]],
          repr([c.evidence for c in visit.state().checks]))
    check("one photo waits for upload", a.pending_evidence() == 1)
    raises("a photo for an unknown check is refused", "NotFound",
           lambda: visit.add_evidence("no-such-check", b"x"))
    check("nothing kept of a refused photo", a.pending_evidence() == 1)
    visit.submit("đã bổ sung")
    a.sync(None, None, upload_evidence=False)
    up = a.upload_evidence()
    check("the photo is uploaded in pieces",
          up.uploaded == 1 and up.bytes_sent == len(pic) and up.requests >= 3 and not up.errors,
          repr(up))
    check("no photo waits any more", a.pending_evidence() == 0)
    pic2 = bytes(range(255, -1, -1)) * 10
    visit.add_evidence("hotline", pic2)
    synced = a.sync()
    check("sync uploads a waiting photo by itself",
          synced.evidence is not None and synced.evidence.uploaded == 1 and a.pending_evidence() == 0,
          str(synced))
    default_policy = a.retry_policy()
    check("a store's retry policy has defaults", default_policy.max_attempts >= 1, str(default_policy))
    a.set_retry_policy(km.RetryPolicy(timeout_ms=30000, max_attempts=12, base_backoff_ms=100,
                                      max_backoff_ms=5000))
    check("the retry policy is set per store", a.retry_policy().max_attempts == 12
          and a.retry_policy().timeout_ms == 30000)
    check("repr() of a record prints its fields", "max_attempts: 12" in repr(a.retry_policy()),
          repr(a.retry_policy()))
    refusal = raises("an unknown office check is refused", "NotFound",
                     lambda: visit.record_check("no-such-check", "pass"))
    check("str() of an error is its message", str(refusal).startswith("not found:"), str(refusal))
    raises("a retry policy with no attempts is refused", "Invalid",
           lambda: a.set_retry_policy(km.RetryPolicy(timeout_ms=30000, max_attempts=0,
                                                     base_backoff_ms=100, max_backoff_ms=5000)))
    s.sync(None, None)
    approval = vs.approve("đồng ý")
    s.sync(None, None)
    a.sync(None, None)
    final = visit.state()
    check("approval reaches A, signed", final.status == "approved" and
          [(x.id, x.signed, x.by) for x in final.approvals] == [(approval, True, "sup-py")],
          repr(final.approvals))
    check("listing shows approved", a.list_visits()[0].status == "approved")

    # --- history ------------------------------------------------------------
    history = visit.history()
    check("history in domain terms", len(history) > 20 and history[0].user == "insp-py-a"
          and any("Nguyễn Văn An" in l.vi for h in history for l in h.lines), len(history))
    check("no change after approval", not any(h.after_approval for h in history))
    before_conflict = next(i for i, h in enumerate(history)
                           if any("training" in l.en for l in h.lines))
    point = history[before_conflict - 1].hash
    past = visit.state_at([point])
    check("state at a past point", attendance_of(past, "s-1") == ("present", None)
          and past.status == "draft", repr(attendance_of(past, "s-1")))
    diff = visit.diff([point], visit.heads())
    check("diff lists the changes in between",
          any(l.en.startswith("Attendance of Nguyễn Văn An") for l in diff)
          and any("approved" in l.en.lower() for l in diff), repr([l.en for l in diff]))
    raises("an unknown point in history is refused", "NotFound",
           lambda: visit.state_at(["00" * 32]))
    raises("a malformed point in history is refused", "Invalid", lambda: visit.state_at(["zz"]))
    raises("before the visit existed", "NotFound",
           lambda: visit.state_at_time("2000-01-01T00:00:00Z"))
    late = visit.state_at_time("2100-01-01T00:00:00Z")
    check("state now by time", late == visit.state())

    # --- cancellation -------------------------------------------------------
    token = km.CancelToken()
    token.cancel()
    check("token cancelled", token.is_cancelled())
    raises("a cancelled sync stops", "Cancelled", lambda: a.sync(None, token))

    # --- async calls, the app's key store, cancelling a hung sync ---------
    asyncio.run(async_and_key_store(template))

    # --- a process killed while recording ---------------------------------
    a.close_store()
    idfile = os.path.join(WORK, "visit-id")
    with open(idfile, "w") as f:
        f.write(vid)
    child = subprocess.run([sys.executable, __file__, "child", a_path, idfile],
                           capture_output=True, text=True, timeout=120)
    acks = [int(line.split()[1]) for line in child.stdout.splitlines() if line.startswith("ack ")]
    check("the child was killed mid-recording", child.returncode == 9 and len(acks) > 0,
          f"rc={child.returncode} acks={len(acks)} err={child.stderr[-500:]}")
    a = km.DeviceStore.open(a_path)
    texts = {f.text for f in a.open_visit(vid).state().findings}
    lost = [i for i in acks if f"kill-test {i}" not in texts]
    check("no acknowledged edit lost", lost == [], f"lost {lost}")
    print(f"kill test: {len(acks)} edits acknowledged before os._exit, {len(lost)} lost", flush=True)

    valued_checks(a)

    print(f"bindings[python]: {PASSED} passed, {FAILED} failed", flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_records(sys.argv[2], sys.argv[3])
    try:
        code = main()
    except Exception as e:  # noqa: BLE001 - an unexpected error fails the run
        import traceback
        traceback.print_exc()
        print(f"bindings[python]: {PASSED} passed, {FAILED + 1} failed (aborted: {e!r})", flush=True)
        code = 1
    sys.exit(code)
