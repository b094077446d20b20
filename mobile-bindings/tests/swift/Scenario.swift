// The inspector/supervisor scenario through the generated Swift bindings,
// against a real kiemtra-server process: the same story as
// tests/kotlin/Scenario.kt and tests/python/scenario.py, plus merging on
// site by bundle files. Built and run by tests/bindings.rs inside a Debian
// trixie chroot (Debian's swiftlang); the server runs outside it, and the
// enrollment codes come in the environment. Prints
// `bindings[swift]: N passed, M failed`.

import Foundation

var passed = 0
var failed = 0

func check(_ name: String, _ cond: Bool, _ detail: String = "") {
    if cond {
        passed += 1
    } else {
        failed += 1
        print("FAIL \(name) \(detail)")
    }
}

func kind(_ e: ApiError) -> String {
    switch e {
    case .Invalid: return "Invalid"
    case .NotFound: return "NotFound"
    case .NotAllowed: return "NotAllowed"
    case .NotEnrolled: return "NotEnrolled"
    case .AlreadyEnrolled: return "AlreadyEnrolled"
    case .Network: return "Network"
    case .Refused: return "Refused"
    case .Cancelled: return "Cancelled"
    case .Storage: return "Storage"
    case .Closed: return "Closed"
    case .KeyStore: return "KeyStore"
    }
}

func raises(_ name: String, _ expected: String, _ body: () throws -> Void) {
    do {
        try body()
        check(name, false, "did not raise \(expected)")
    } catch let e as ApiError {
        check(name, kind(e) == expected, "raised \(e), expected \(expected)")
    } catch {
        check(name, false, "raised a non-API error \(error)")
    }
}

let env = ProcessInfo.processInfo.environment
let url = env["KIEMTRA_SERVER_URL"]!
let team = env["KIEMTRA_TEAM"]!
let work = env["KIEMTRA_WORKDIR"]!
let lossyUrl = env["KIEMTRA_LOSSY_URL"]!
let stallUrl = env["KIEMTRA_STALL_URL"]!
let quick = RetryPolicy(timeoutMs: 10_000, maxAttempts: 6, baseBackoffMs: 50, maxBackoffMs: 500)

/// The enrollment codes the test made for this run: `user=code,…`.
var codes: [String: [String]] = [:]
for pair in env["KIEMTRA_CODES"]!.split(separator: ",") {
    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
    codes[parts[0], default: []].append(parts[1])
}

func code(_ user: String) -> String {
    guard var list = codes[user], !list.isEmpty else {
        check("an enrollment code for \(user)", false)
        return "NONE"
    }
    let c = list.removeFirst()
    codes[user] = list
    return c
}

func attendanceOf(_ view: VisitView, _ staff: String) -> [String?]? {
    guard let s = view.staff.first(where: { $0.id == staff }) else { return nil }
    return [s.attendance, s.absenceReason]
}

final class Listener: SyncListener, @unchecked Sendable {
    var calls: [SyncProgress] = []
    let lock = NSLock()
    func onProgress(progress: SyncProgress) {
        lock.lock()
        calls.append(progress)
        lock.unlock()
    }
}

func sha256(_ data: Data) -> String {
    let path = "\(work)/photo.bin"
    FileManager.default.createFile(atPath: path, contents: data)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    let pipe = Pipe()
    p.standardOutput = pipe
    try? p.run()
    p.waitUntilExit()
    let out = String(data: pipe.fileHandleForReading.readDataToEndOfFile(), encoding: .utf8) ?? ""
    return String(out.prefix(64))
}

func scenario() throws {
    let template = try String(contentsOfFile: env["KIEMTRA_TEMPLATE"]!, encoding: .utf8)
    let aPath = "\(work)/phone-a/store.db"
    let bPath = "\(work)/phone-b/store.db"
    let sPath = "\(work)/phone-s/store.db"

    // enroll
    let codeA = code("insp-sw-a")
    var a = try enroll(storePath: aPath, serverUrl: url, code: codeA, deviceName: "Điện thoại A")
    let ident = a.identity()
    check("enroll gives the inspector's identity",
          ident.userId == "insp-sw-a" && ident.role == "inspector" && ident.team == team, "\(ident)")
    raises("a used code is refused", "Refused") {
        _ = try enroll(storePath: "\(work)/x/s.db", serverUrl: url, code: codeA, deviceName: "again")
    }
    raises("enrolling twice is refused", "AlreadyEnrolled") {
        _ = try enroll(storePath: aPath, serverUrl: url, code: code("insp-sw-a"), deviceName: "twice")
    }
    raises("opening a store never enrolled", "NotEnrolled") {
        _ = try DeviceStore.open(storePath: "\(work)/never/s.db")
    }

    // an enrollment whose answer is lost (the harness's proxy) is retried
    // with the same key; bindings.rs checks the server lists one device
    let lost = try enroll(storePath: "\(work)/phone-lost/store.db", serverUrl: lossyUrl,
                          code: code("insp-sw-lost"), deviceName: "Điện thoại vùng sâu", retryPolicy: quick)
    check("an enrollment whose answer was lost succeeds on its retry", lost.identity().userId == "insp-sw-lost")

    // create and record offline
    let roster = [
        StaffInput(id: "s-1", name: "Nguyễn Văn An", position: "Chánh Văn phòng", category: "leader", onPayroll: true),
        StaffInput(id: "s-2", name: "Trần Thị Bình", position: "Văn thư", category: "civil_servant", onPayroll: true),
        StaffInput(id: "s-3", name: "Lê Văn Cường", position: "Kế toán", category: "civil_servant", onPayroll: true),
        StaffInput(id: "s-4", name: "Phạm Thị Dung", position: "Tạp vụ", category: "contract", onPayroll: false),
    ]
    let input = NewVisitInput(unitCode: "ubnd-xa-an-binh", unitName: "UBND xã An Bình",
                              unitKind: "commune_committee", area: "Ninh Kiều",
                              campaign: "cantho-2015", scheduledOn: "2015-08-31", roster: roster)
    var castle = input
    castle.unitKind = "castle"
    raises("an unknown unit kind is refused", "Invalid") {
        _ = try a.createVisit(input: castle, templateJson: template)
    }
    var badDate = input
    badDate.scheduledOn = "31/08/2015"
    raises("a malformed date is refused", "Invalid") {
        _ = try a.createVisit(input: badDate, templateJson: template)
    }
    var visit = try a.createVisit(input: input, templateJson: template)
    let vid = visit.id()
    check("a new visit has an id", vid.hasPrefix("v-"), vid)
    try visit.recordAttendance(staffId: "s-1", status: "present") // reason, note and time by default
    try visit.recordAttendance(staffId: "s-2", status: "late", reason: nil, note: "đến 7 giờ 45",
                               observedAt: "2015-08-31T00:45:00Z")
    try visit.recordAttendance(staffId: "s-3", status: "absent", reason: "business_trip", note: "đi Hà Nội",
                               observedAt: nil)
    raises("absent without a reason", "Invalid") {
        try visit.recordAttendance(staffId: "s-1", status: "absent", reason: nil, note: "", observedAt: nil)
    }
    raises("present with a reason", "Invalid") {
        try visit.recordAttendance(staffId: "s-1", status: "present", reason: "sick", note: "", observedAt: nil)
    }
    raises("unknown staff", "NotFound") {
        try visit.recordAttendance(staffId: "s-99", status: "present", reason: nil, note: "", observedAt: nil)
    }
    try visit.recordConduct(staffId: "s-1", check: "badge", result: "violation", note: "không đeo thẻ")
    raises("unknown conduct result", "Invalid") {
        try visit.recordConduct(staffId: "s-1", check: "badge", result: "maybe", note: "")
    }
    try visit.recordCheck(checkId: "tthc-posted", result: "pass", note: "niêm yết đủ")
    try visit.recordCheck(checkId: "hotline", result: "fail", note: "không có số đường dây nóng")
    raises("unknown office check", "NotFound") {
        try visit.recordCheck(checkId: "no-such-check", result: "pass", note: "")
    }
    let photo = String(repeating: "ab", count: 32)
    try visit.attachEvidence(checkId: "hotline", sha256: photo)
    try visit.attachEvidence(checkId: "hotline", sha256: String(repeating: "cd", count: 32))
    try visit.detachEvidence(checkId: "hotline", sha256: String(repeating: "cd", count: 32))
    let guardMan = StaffInput(id: "s-5", name: "Võ Văn Em", position: "Bảo vệ", category: "contract", onPayroll: false)
    try visit.addStaff(member: guardMan)
    raises("a duplicate staff member", "Invalid") { try visit.addStaff(member: guardMan) }
    let fid = try visit.addFinding(finding: FindingInput(
        category: "tthc", severity: "moderate", text: "Chưa niêm yết số điện thoại đường dây nóng",
        recommendation: "Niêm yết trong tuần", relatedStaff: ["s-1"]))
    try visit.updateFinding(findingId: fid, field: "severity", value: "serious")
    try visit.updateFinding(findingId: fid, field: "withdrawn", value: "false")
    raises("withdrawn must be a boolean", "Invalid") {
        try visit.updateFinding(findingId: fid, field: "withdrawn", value: "perhaps")
    }
    try visit.setNarrative(text: "Đoàn đến lúc 7 giờ 30.")
    try visit.spliceNarrative(position: UInt32("Đoàn đến lúc 7 giờ 30".count), delete: 0, insert: " sáng")

    let view = try visit.state()
    check("attendance recorded", attendanceOf(view, "s-3") == ["absent", "business_trip"])
    check("narrative spliced", view.narrative == "Đoàn đến lúc 7 giờ 30 sáng.", view.narrative)
    check("evidence is a set", view.checks.first(where: { $0.id == "hotline" })?.evidence == [photo])
    check("finding updated", view.findings.map { $0.severity } == ["serious"])
    check("check labels in both languages",
          !(view.checks.first(where: { $0.id == "hotline" })?.labelVi.isEmpty ?? true))
    let t = try visit.tally()
    check("tally counts the payroll only",
          [t.payroll, t.present, t.late, t.absent, t.unrecorded] == [3, 2, 1, 1, 0], "\(t)")
    check("tally percentages", t.presentPct == 6667 && t.absentText == "33,33%", "\(t)")
    let printed = "\(t)"
    check("a record prints its fields", printed.contains("payroll: 3") && printed.contains("absent_text: \"33,33%\""),
          printed)
    check("listing shows the visit", try a.listVisits().map { [$0.id, $0.status] } == [[vid, "draft"]])

    // close and reopen
    try a.closeStore()
    raises("a closed store refuses calls", "Closed") { _ = try a.listVisits() }
    a = try DeviceStore.open(storePath: aPath)
    visit = try a.openVisit(visitId: vid)
    check("reopened store keeps every edit", try visit.state() == view)
    raises("unknown visit", "NotFound") { _ = try a.openVisit(visitId: "v-nosuchvisit") }

    // sync; a second device
    let listener = Listener()
    let token = CancelToken()
    let up = try a.sync(listener: listener, cancel: token)
    check("upload carries the visit", up.visitsUploaded == 1 && up.errors.isEmpty, "\(up)")
    check("progress reported", !listener.calls.isEmpty && (listener.calls.last?.bytesSent ?? 0) > 0)
    let b = try enroll(storePath: bPath, serverUrl: url, code: code("insp-sw-b"), deviceName: "Điện thoại B")
    let down = try b.sync(listener: nil, cancel: nil)
    check("second device receives the visit", down.visitsDownloaded == 1, "\(down)")
    let vb = try b.openVisit(visitId: vid)
    check("second device holds the same visit", try vb.state() == visit.state())

    // the same person recorded differently offline
    try visit.recordAttendance(staffId: "s-1", status: "absent", reason: "training", note: "học chính trị", observedAt: nil)
    try vb.recordAttendance(staffId: "s-1", status: "late", reason: nil, note: "", observedAt: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    _ = try b.sync(listener: nil, cancel: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    let ca = try visit.conflicts()
    let cb = try vb.conflicts()
    check("conflict listed on A", ca.map { $0.field } == ["attendance/s-1"], "\(ca)")
    check("the same conflict on B", cb.map { "\($0.field) \($0.candidates.count)" } == ["attendance/s-1 2"])
    check("candidates carry authors",
          cb.flatMap { c in c.candidates.map { $0.by } }.sorted() == ["insp-sw-a", "insp-sw-b"])
    check("the conflict says what differs",
          cb.first?.differsEn.contains("what was observed") ?? false, "\(cb)")
    raises("an inspector may not settle a conflict", "NotAllowed") {
        try vb.resolve(field: "attendance/s-1", candidate: 0)
    }

    let s = try enroll(storePath: sPath, serverUrl: url, code: code("sup-sw"), deviceName: "Trưởng đoàn")
    _ = try s.sync(listener: nil, cancel: nil)
    let vs = try s.openVisit(visitId: vid)
    let cs = try vs.conflicts()
    check("supervisor sees the conflict", cs.count == 1)
    let pick = cs.first?.candidates.firstIndex(where: { $0.valueEn.hasPrefix("absent") }) ?? 0
    raises("a candidate out of range", "Invalid") { try vs.resolve(field: "attendance/s-1", candidate: 9) }
    try vs.resolve(field: "attendance/s-1", candidate: UInt32(pick))
    _ = try s.sync(listener: nil, cancel: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    _ = try b.sync(listener: nil, cancel: nil)
    check("resolution reaches A", try visit.conflicts().isEmpty &&
          attendanceOf(try visit.state(), "s-1") == ["absent", "training"])
    check("resolution reaches B", try vb.conflicts().isEmpty && vb.state() == visit.state())

    // merging on site by bundle files, no network for the exchange
    check("A learns its team's devices and keys", try a.refreshTeam() >= 3)
    check("B too", try b.refreshTeam() >= 3)
    try visit.recordAttendance(staffId: "s-2", status: "present", reason: nil, note: "", observedAt: nil)
    try vb.recordAttendance(staffId: "s-2", status: "present", reason: nil, note: "tổ 2 ghi nhận", observedAt: nil)
    let fromB = try b.writeBundle(visitIds: [vid])
    check("a bundle starts with KTBN", fromB.prefix(4) == Data("KTBN".utf8))
    raises("a cut-short bundle is refused", "Invalid") { _ = try a.readBundle(bytes: fromB.dropLast(3)) }
    raises("a non-bundle is refused", "Invalid") { _ = try a.readBundle(bytes: Data("not a bundle".utf8)) }
    let got = try a.readBundle(bytes: fromB)
    check("A reads B's bundle", got.updated == [vid] && got.newChanges >= 1, "\(got)")
    let back = try b.readBundle(bytes: try a.writeBundle(visitIds: []))
    check("B reads A's", back.updated.contains(vid), "\(back)")
    check("both show the same visit after the exchange", try visit.state() == vb.state())
    check("the same mark by both groups is no conflict", try visit.conflicts().isEmpty)
    let again = try a.readBundle(bytes: fromB)
    check("reading a bundle twice adds nothing", again.newChanges == 0, "\(again)")
    _ = try b.sync(listener: nil, cancel: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    check("after a sync both hold the same heads", try vb.heads().sorted() == visit.heads().sorted())

    // submit, return, approve
    raises("an inspector may not approve", "NotAllowed") { _ = try visit.approve(note: "ok") }
    raises("an inspector may not return", "NotAllowed") { try visit.returnVisit(reason: "no") }
    try visit.submit(note: "xong")
    _ = try a.sync(listener: nil, cancel: nil)
    _ = try s.sync(listener: nil, cancel: nil)
    try vs.returnVisit(reason: "bổ sung ảnh")
    _ = try s.sync(listener: nil, cancel: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    check("returned visit reaches A", try visit.state().status == "returned")
    let pic = Data((0..<300_000).map { UInt8($0 % 251) })
    let sha = try visit.addEvidence(checkId: "tthc-posted", bytes: pic)
    check("a photo is named by its SHA-256", sha == sha256(pic), sha)
    check("one photo waits for upload", try a.pendingEvidence() == 1)
    raises("a photo for an unknown check is refused", "NotFound") {
        _ = try visit.addEvidence(checkId: "no-such-check", bytes: Data([1]))
    }
    try visit.submit(note: "đã bổ sung")
    _ = try a.sync(uploadEvidence: false)
    let sent = try a.uploadEvidence()
    check("the photo is uploaded in pieces",
          sent.uploaded == 1 && sent.bytesSent == 300_000 && sent.errors.isEmpty, "\(sent)")
    check("no photo waits any more", try a.pendingEvidence() == 0)
    _ = try visit.addEvidence(checkId: "hotline", bytes: Data((0..<2_000).map { UInt8($0 % 7) }))
    let synced = try a.sync()
    let waiting = try a.pendingEvidence()
    check("sync uploads a waiting photo by itself",
          synced.evidence?.uploaded == 1 && waiting == 0, "\(synced)")
    try a.setRetryPolicy(policy: RetryPolicy(timeoutMs: 30_000, maxAttempts: 12, baseBackoffMs: 100, maxBackoffMs: 5_000))
    check("the retry policy is set per store", a.retryPolicy().maxAttempts == 12)
    raises("a retry policy with no attempts is refused", "Invalid") {
        try a.setRetryPolicy(policy: RetryPolicy(timeoutMs: 30_000, maxAttempts: 0, baseBackoffMs: 100, maxBackoffMs: 5_000))
    }
    _ = try s.sync(listener: nil, cancel: nil)
    let approval = try vs.approve(note: "đồng ý")
    _ = try s.sync(listener: nil, cancel: nil)
    _ = try a.sync(listener: nil, cancel: nil)
    let fin = try visit.state()
    check("approval reaches A, signed",
          fin.status == "approved" && fin.approvals.map { "\($0.id) \($0.signed) \($0.by)" }
              == ["\(approval) true sup-sw"], "\(fin.approvals)")

    // history
    let history = try visit.history()
    check("history in domain terms", history.count > 15 && history[0].user == "insp-sw-a" &&
          history.contains { h in h.lines.contains { $0.vi.contains("Nguyễn Văn An") } })
    let idx = history.firstIndex { h in h.lines.contains { $0.en.contains("training") } } ?? -1
    check("the conflicting mark is in history", idx > 0)
    let point = history[max(idx - 1, 0)].hash
    let past = try visit.stateAt(heads: [point])
    check("state at a past point", attendanceOf(past, "s-1") == ["present", nil] && past.status == "draft")
    let diff = try visit.diff(from: [point], to: visit.heads())
    check("diff lists the changes in between", diff.contains { $0.en.hasPrefix("Attendance of Nguyễn Văn An") })
    raises("an unknown point in history", "NotFound") {
        _ = try visit.stateAt(heads: [String(repeating: "00", count: 32)])
    }
    check("state now by time", try visit.stateAtTime(at: "2100-01-01T00:00:00Z") == visit.state())
    raises("a malformed time", "Invalid") { _ = try visit.stateAtTime(at: "tomorrow") }

    // cancellation
    let stop = CancelToken()
    stop.cancel()
    check("token cancelled", stop.isCancelled())
    raises("a cancelled sync stops", "Cancelled") { _ = try a.sync(listener: nil, cancel: stop) }
}

/// An app's own key store (the iOS Keychain), here a dictionary; `fail`
/// makes it refuse to keep keys.
final class MemoryKeyStore: KeyStore, @unchecked Sendable {
    private let lock = NSLock()
    private let fail: Bool
    var keys: [String: Data] = [:]
    init(fail: Bool = false) { self.fail = fail }
    func saveKey(alias: String, key: Data) throws {
        if fail { throw KeyStoreError.Failed(detail: "the keychain is locked") }
        lock.lock(); keys[alias] = key; lock.unlock()
    }
    func loadKey(alias: String) throws -> Data? {
        lock.lock(); defer { lock.unlock() }
        return keys[alias]
    }
    func deleteKey(alias: String) throws {
        lock.lock(); keys[alias] = nil; lock.unlock()
    }
}

func smallVisit(_ unitCode: String) -> NewVisitInput {
    NewVisitInput(unitCode: unitCode, unitName: "UBND phường Cái Khế", unitKind: "commune_committee",
                  area: "Ninh Kiều", campaign: "cantho-2015", scheduledOn: "2015-09-01",
                  roster: [StaffInput(id: "k-1", name: "Đỗ Thị Hoa", position: "Công chức tư pháp",
                                      category: "civil_servant", onPayroll: true)])
}

func outcome(_ body: () async throws -> Void) async -> String {
    do {
        try await body()
        return "finished"
    } catch let e as ApiError {
        return kind(e)
    } catch {
        return "\(error)"
    }
}

func asyncAndKeyStore(_ template: String) async throws {
    // a key store that cannot keep the key stops enrollment before the network
    let kPath = "\(work)/phone-k/store.db"
    let kCode = code("insp-sw-key")
    do {
        _ = try await enrollAsync(storePath: kPath, serverUrl: url, code: kCode, deviceName: "Điện thoại K",
                                  keyStore: MemoryKeyStore(fail: true))
        check("a failing key store stops the enrollment", false, "enrolled")
    } catch let e as ApiError {
        check("a failing key store stops the enrollment, saying why",
              kind(e) == "KeyStore" && "\(e)".contains("locked"), "\(e)")
    }
    let keys = MemoryKeyStore()
    var k = try await enrollAsync(storePath: kPath, serverUrl: url, code: kCode, deviceName: "Điện thoại K",
                                  keyStore: keys)
    check("the same code then enrolls (await enrollAsync)", k.identity().userId == "insp-sw-key")
    let alias = keys.keys.keys.first ?? "none"
    check("the app's key store holds the device key",
          keys.keys.count == 1 && alias.hasPrefix("kiemtra-device-"), alias)
    let key = keys.keys[alias] ?? Data()
    let keyHex = Data(key.map { String(format: "%02x", $0) }.joined().utf8)
    var onDisk = Data()
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "\(work)/phone-k")) ?? []
    where name.hasPrefix("store.db") {
        onDisk.append(FileManager.default.contents(atPath: "\(work)/phone-k/\(name)") ?? Data())
    }
    check("the store's files do not hold the key",
          !key.isEmpty && onDisk.range(of: key) == nil && onDisk.range(of: keyHex) == nil)
    let kv = try k.createVisit(input: smallVisit("ubnd-phuong-cai-khe"), templateJson: template)
    try kv.recordAttendance(staffId: "k-1", status: "present")
    var report = try await k.syncAsync()
    check("a sync signed with the app-kept key is accepted (await syncAsync)",
          report.visitsUploaded == 1 && report.errors.isEmpty, "\(report)")
    try k.closeStore()
    raises("opening without the app's key store is refused", "KeyStore") {
        _ = try DeviceStore.open(storePath: kPath)
    }
    raises("a key store without the key is refused", "KeyStore") {
        _ = try DeviceStore.open(storePath: kPath, keyStore: MemoryKeyStore())
    }
    let wrong = MemoryKeyStore()
    wrong.keys[alias] = Data(repeating: 0x30, count: 83)
    raises("a key store holding something else is refused", "KeyStore") {
        _ = try DeviceStore.open(storePath: kPath, keyStore: wrong)
    }
    k = try DeviceStore.open(storePath: kPath, keyStore: keys)
    try k.openVisit(visitId: kv.id()).recordAttendance(staffId: "k-1", status: "late", note: "đến 8 giờ")
    report = try await k.syncAsync(uploadEvidence: false)
    check("reopened with its key store, the device signs what the server accepts",
          report.visitsUploaded == 1 && report.errors.isEmpty && report.evidence == nil, "\(report)")
    let devices = try await k.refreshTeamAsync()
    check("await refreshTeamAsync", devices >= 1)
    let up = try await k.uploadEvidenceAsync()
    check("await uploadEvidenceAsync with nothing waiting", up.uploaded == 0 && up.errors.isEmpty, "\(up)")

    // a sync on a link that hangs, given up by cancelling its task: Swift
    // does not tell a call its task was cancelled, so the task's
    // cancellation handler cancels the call's token
    let st = try await enrollAsync(storePath: "\(work)/phone-stall/store.db", serverUrl: stallUrl,
                                   code: code("insp-sw-stall"), deviceName: "Điện thoại mất sóng")
    try st.setRetryPolicy(policy: RetryPolicy(timeoutMs: 600_000, maxAttempts: 1, baseBackoffMs: 100, maxBackoffMs: 100))
    let sv = try st.createVisit(input: smallVisit("ubnd-xa-thoi-an"), templateJson: template)
    try sv.recordAttendance(staffId: "k-1", status: "absent", reason: "sick")
    let token = CancelToken()
    let task = Task {
        await outcome {
            _ = try await withTaskCancellationHandler {
                try await st.syncAsync(cancel: token)
            } onCancel: {
                token.cancel()
            }
        }
    }
    try await Task.sleep(nanoseconds: 500_000_000)
    task.cancel()
    let ended = await task.value
    check("cancelling the task cancels the sync (ApiError.Cancelled)", ended == "Cancelled", ended)
    // the call itself stopped and let go of the store: a blocking call on
    // another thread gets it (it would wait for the sync otherwise)
    let free = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var count = -1
    DispatchQueue.global().async {
        count = (try? st.listVisits().count) ?? -2
        free.signal()
    }
    let waited = free.wait(timeout: .now() + 120)
    check("the cancelled call let go of the store", waited == .success && count == 1, "\(count)")
    check("what was recorded before the cancelled sync is kept",
          attendanceOf(try st.openVisit(visitId: sv.id()).state(), "k-1") == ["absent", "sick"])
}

do {
    try scenario()
    let template = try String(contentsOfFile: env["KIEMTRA_TEMPLATE"]!, encoding: .utf8)
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var asyncError: Error? = nil
    Task.detached {
        do { try await asyncAndKeyStore(template) } catch { asyncError = error }
        done.signal()
    }
    done.wait()
    if let e = asyncError { throw e }
} catch {
    failed += 1
    print("aborted: \(error)")
}
print("bindings[swift]: \(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
