// The inspector/supervisor scenario through the generated Kotlin bindings
// on the JVM (JNA), against a real kiemtra-server process. The same story
// as tests/python/scenario.py; run by tests/bindings.rs with the same
// environment. Prints `bindings[kotlin]: N passed, M failed`.

import kotlinx.coroutines.*
import uniffi.kiemtra_mobile.*
import java.io.File
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess

var passed = 0
var failed = 0

fun check(name: String, cond: Boolean, detail: String = "") {
    if (cond) passed++ else {
        failed++
        println("FAIL $name $detail")
    }
}

inline fun <reified E : ApiException> raises(name: String, block: () -> Unit) {
    try {
        block()
        check(name, false, "did not raise ${E::class.simpleName}")
    } catch (e: ApiException) {
        check(name, e is E, "raised $e (${e::class.simpleName}), expected ${E::class.simpleName}")
    }
}

val env: Map<String, String> = System.getenv()
val url = env.getValue("KIEMTRA_SERVER_URL")
val serverBin = env.getValue("KIEMTRA_SERVER_BIN")
val serverData = env.getValue("KIEMTRA_SERVER_DATA")
val team = env.getValue("KIEMTRA_TEAM")
val work = env.getValue("KIEMTRA_WORKDIR")
val lossyUrl = env.getValue("KIEMTRA_LOSSY_URL")
val stallUrl = env.getValue("KIEMTRA_STALL_URL")
val quick = RetryPolicy(timeoutMs = 10_000uL, maxAttempts = 6u, baseBackoffMs = 50uL, maxBackoffMs = 500uL)

fun enrollmentCode(user: String, role: String): String {
    val p = ProcessBuilder(
        serverBin, "--data", serverData, "enroll-code",
        "--user", user, "--team", team, "--role", role,
    ).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    val out = p.inputStream.bufferedReader().readText().trim()
    check("enroll-code for $user", p.waitFor() == 0)
    return out
}

fun attendanceOf(view: VisitView, staff: String): Pair<String?, String?>? =
    view.staff.firstOrNull { it.id == staff }?.let { it.attendance to it.absenceReason }

class Listener : SyncListener {
    val calls = mutableListOf<SyncProgress>()
    override fun onProgress(progress: SyncProgress) {
        synchronized(calls) { calls.add(progress) }
    }
}

fun scenario() {
    val template = File(env.getValue("KIEMTRA_TEMPLATE")).readText()
    val aPath = "$work/phone-a/store.db"
    val bPath = "$work/phone-b/store.db"
    val sPath = "$work/phone-s/store.db"

    // enroll
    val codeA = enrollmentCode("insp-kt-a", "inspector")
    var a = enroll(aPath, url, codeA, "Điện thoại A")
    val ident = a.identity()
    check("enroll gives the inspector's identity",
        ident.userId == "insp-kt-a" && ident.role == "inspector" && ident.team == team, "$ident")
    raises<ApiException.Refused>("a used code is refused") { enroll("$work/x/s.db", url, codeA, "again") }
    raises<ApiException.AlreadyEnrolled>("enrolling twice is refused") {
        enroll(aPath, url, enrollmentCode("insp-kt-a", "inspector"), "twice")
    }
    raises<ApiException.NotEnrolled>("opening a store never enrolled") { DeviceStore.open("$work/never/s.db") }

    // an enrollment whose answer is lost (the harness's proxy) is retried
    // with the same key; bindings.rs checks the server lists one device
    val lost = enroll("$work/phone-lost/store.db", lossyUrl, enrollmentCode("insp-kt-lost", "inspector"),
        "Điện thoại vùng sâu", retryPolicy = quick)
    check("an enrollment whose answer was lost succeeds on its retry", lost.identity().userId == "insp-kt-lost")

    // create and record offline
    val roster = listOf(
        StaffInput("s-1", "Nguyễn Văn An", "Chánh Văn phòng", "leader", true),
        StaffInput("s-2", "Trần Thị Bình", "Văn thư", "civil_servant", true),
        StaffInput("s-3", "Lê Văn Cường", "Kế toán", "civil_servant", true),
        StaffInput("s-4", "Phạm Thị Dung", "Tạp vụ", "contract", false),
    )
    val input = NewVisitInput("ubnd-xa-an-binh", "UBND xã An Bình", "commune_committee",
        "Ninh Kiều", "cantho-2015", "2015-08-31", roster)
    raises<ApiException.Invalid>("an unknown unit kind is refused") {
        a.createVisit(input.copy(unitKind = "castle"), template)
    }
    raises<ApiException.Invalid>("a malformed date is refused") {
        a.createVisit(input.copy(scheduledOn = "31/08/2015"), template)
    }
    var visit = a.createVisit(input, template)
    val vid = visit.id()
    check("a new visit has an id", vid.startsWith("v-"), vid)
    visit.recordAttendance("s-1", "present") // reason, note and time by default
    visit.recordAttendance("s-2", "late", null, "đến 7 giờ 45", "2015-08-31T00:45:00Z")
    visit.recordAttendance("s-3", "absent", "business_trip", "đi Hà Nội", null)
    raises<ApiException.Invalid>("absent without a reason") { visit.recordAttendance("s-1", "absent", null, "", null) }
    raises<ApiException.Invalid>("present with a reason") { visit.recordAttendance("s-1", "present", "sick", "", null) }
    raises<ApiException.NotFound>("unknown staff") { visit.recordAttendance("s-99", "present", null, "", null) }
    visit.recordConduct("s-1", "badge", "violation", "không đeo thẻ")
    raises<ApiException.Invalid>("unknown conduct result") { visit.recordConduct("s-1", "badge", "maybe", "") }
    visit.recordCheck("tthc-posted", "pass", "niêm yết đủ")
    visit.recordCheck("hotline", "fail", "không có số đường dây nóng")
    raises<ApiException.NotFound>("unknown office check") { visit.recordCheck("no-such-check", "pass", "") }
    val photo = "ab".repeat(32)
    visit.attachEvidence("hotline", photo)
    visit.attachEvidence("hotline", "cd".repeat(32))
    visit.detachEvidence("hotline", "cd".repeat(32))
    visit.addStaff(StaffInput("s-5", "Võ Văn Em", "Bảo vệ", "contract", false))
    raises<ApiException.Invalid>("a duplicate staff member") {
        visit.addStaff(StaffInput("s-5", "Võ Văn Em", "Bảo vệ", "contract", false))
    }
    val fid = visit.addFinding(FindingInput("tthc", "moderate",
        "Chưa niêm yết số điện thoại đường dây nóng", "Niêm yết trong tuần", listOf("s-1")))
    visit.updateFinding(fid, "severity", "serious")
    visit.updateFinding(fid, "withdrawn", "false")
    raises<ApiException.Invalid>("withdrawn must be a boolean") { visit.updateFinding(fid, "withdrawn", "perhaps") }
    visit.setNarrative("Đoàn đến lúc 7 giờ 30.")
    visit.spliceNarrative("Đoàn đến lúc 7 giờ 30".length.toUInt(), 0u, " sáng")

    val view = visit.state()
    check("attendance recorded", attendanceOf(view, "s-3") == ("absent" to "business_trip"))
    check("narrative spliced", view.narrative == "Đoàn đến lúc 7 giờ 30 sáng.", view.narrative)
    check("evidence is a set", view.checks.first { it.id == "hotline" }.evidence == listOf(photo))
    check("finding updated", view.findings.map { it.severity } == listOf("serious"))
    check("check labels in both languages", view.checks.first { it.id == "hotline" }.labelVi.isNotEmpty())
    val t = visit.tally()
    check("tally counts the payroll only",
        listOf(t.payroll, t.present, t.late, t.absent, t.unrecorded) == listOf(3u, 2u, 1u, 1u, 0u), "$t")
    check("tally percentages", t.presentPct == 6667u && t.absentText == "33,33%", "$t")
    check("listing shows the visit", a.listVisits().map { it.id to it.status } == listOf(vid to "draft"))

    // close and reopen
    a.closeStore()
    raises<ApiException.Closed>("a closed store refuses calls") { a.listVisits() }
    a = DeviceStore.open(aPath)
    visit = a.openVisit(vid)
    check("reopened store keeps every edit", visit.state() == view)
    raises<ApiException.NotFound>("unknown visit") { a.openVisit("v-nosuchvisit") }

    // sync; a second device
    val listener = Listener()
    val token = CancelToken()
    val up = a.sync(listener, token)
    check("upload carries the visit", up.visitsUploaded == 1uL && up.errors.isEmpty(), "$up")
    check("progress reported", listener.calls.isNotEmpty() && listener.calls.last().bytesSent > 0uL)
    val b = enroll(bPath, url, enrollmentCode("insp-kt-b", "inspector"), "Điện thoại B")
    val down = b.sync(null, null)
    check("second device receives the visit", down.visitsDownloaded == 1uL, "$down")
    val vb = b.openVisit(vid)
    check("second device holds the same visit", vb.state() == visit.state())

    // the same person recorded differently offline
    visit.recordAttendance("s-1", "absent", "training", "học chính trị", null)
    vb.recordAttendance("s-1", "late", null, "", null)
    a.sync(null, null); b.sync(null, null); a.sync(null, null)
    val ca = visit.conflicts()
    val cb = vb.conflicts()
    check("conflict listed on A", ca.map { it.field } == listOf("attendance/s-1"), "$ca")
    check("the same conflict on B", cb.map { it.field to it.candidates.size } == listOf("attendance/s-1" to 2))
    check("candidates carry authors", cb.flatMap { c -> c.candidates.map { it.by } }.sorted() == listOf("insp-kt-a", "insp-kt-b"))
    raises<ApiException.NotAllowed>("an inspector may not settle a conflict") { vb.resolve("attendance/s-1", 0u) }

    val s = enroll(sPath, url, enrollmentCode("sup-kt", "supervisor"), "Trưởng đoàn")
    s.sync(null, null)
    val vs = s.openVisit(vid)
    val cs = vs.conflicts()
    check("supervisor sees the conflict", cs.size == 1)
    val pick = cs.firstOrNull()?.candidates?.indexOfFirst { it.valueEn.startsWith("absent") } ?: 0
    raises<ApiException.Invalid>("a candidate out of range") { vs.resolve("attendance/s-1", 9u) }
    vs.resolve("attendance/s-1", pick.toUInt())
    s.sync(null, null); a.sync(null, null); b.sync(null, null)
    check("resolution reaches A", visit.conflicts().isEmpty() &&
        attendanceOf(visit.state(), "s-1") == ("absent" to "training"))
    check("resolution reaches B", vb.conflicts().isEmpty() && vb.state() == visit.state())

    // submit, return, approve
    raises<ApiException.NotAllowed>("an inspector may not approve") { visit.approve("ok") }
    raises<ApiException.NotAllowed>("an inspector may not return") { visit.returnVisit("no") }
    visit.submit("xong")
    a.sync(null, null); s.sync(null, null)
    vs.returnVisit("bổ sung ảnh")
    s.sync(null, null); a.sync(null, null)
    check("returned visit reaches A", visit.state().status == "returned")
    val pic = ByteArray(300_000) { (it % 251).toByte() }
    val sha = visit.addEvidence("tthc-posted", pic)
    val expected = java.security.MessageDigest.getInstance("SHA-256").digest(pic)
        .joinToString("") { "%02x".format(it) }
    check("a photo is named by its SHA-256", sha == expected, sha)
    check("one photo waits for upload", a.pendingEvidence() == 1uL)
    raises<ApiException.NotFound>("a photo for an unknown check is refused") {
        visit.addEvidence("no-such-check", byteArrayOf(1))
    }
    visit.submit("đã bổ sung")
    a.sync(uploadEvidence = false)
    val sent = a.uploadEvidence()
    check("the photo is uploaded in pieces",
        sent.uploaded == 1uL && sent.bytesSent == 300_000uL && sent.errors.isEmpty(), sent.toString())
    check("no photo waits any more", a.pendingEvidence() == 0uL)
    visit.addEvidence("hotline", ByteArray(2_000) { (it % 7).toByte() })
    val synced = a.sync()
    check("sync uploads a waiting photo by itself",
        synced.evidence?.uploaded == 1uL && a.pendingEvidence() == 0uL, synced.toString())
    a.setRetryPolicy(RetryPolicy(timeoutMs = 30_000uL, maxAttempts = 12u, baseBackoffMs = 100uL, maxBackoffMs = 5_000uL))
    check("the retry policy is set per store", a.retryPolicy().maxAttempts == 12u)
    raises<ApiException.Invalid>("a retry policy with no attempts is refused") {
        a.setRetryPolicy(RetryPolicy(timeoutMs = 30_000uL, maxAttempts = 0u, baseBackoffMs = 100uL, maxBackoffMs = 5_000uL))
    }
    check("a record prints its fields", a.retryPolicy().toString().contains("max_attempts: 12"), a.retryPolicy().toString())
    s.sync(null, null)
    val approval = vs.approve("đồng ý")
    s.sync(null, null); a.sync(null, null)
    val fin = visit.state()
    check("approval reaches A, signed",
        fin.status == "approved" && fin.approvals.map { Triple(it.id, it.signed, it.by) } == listOf(Triple(approval, true, "sup-kt")))

    // history
    val history = visit.history()
    check("history in domain terms", history.size > 15 && history[0].user == "insp-kt-a" &&
        history.any { h -> h.lines.any { "Nguyễn Văn An" in it.vi } })
    val idx = history.indexOfFirst { h -> h.lines.any { "training" in it.en } }
    check("the conflicting mark is in history", idx > 0)
    val point = history[maxOf(idx - 1, 0)].hash
    val past = visit.stateAt(listOf(point))
    check("state at a past point", attendanceOf(past, "s-1") == ("present" to null) && past.status == "draft")
    val diff = visit.diff(listOf(point), visit.heads())
    check("diff lists the changes in between", diff.any { it.en.startsWith("Attendance of Nguyễn Văn An") })
    raises<ApiException.NotFound>("an unknown point in history") { visit.stateAt(listOf("00".repeat(32))) }
    check("state now by time", visit.stateAtTime("2100-01-01T00:00:00Z") == visit.state())
    raises<ApiException.Invalid>("a malformed time") { visit.stateAtTime("tomorrow") }

    // cancellation
    val stop = CancelToken()
    stop.cancel()
    check("token cancelled", stop.isCancelled())
    raises<ApiException.Cancelled>("a cancelled sync stops") { a.sync(null, stop) }

    asyncAndKeyStore(template)
}

/** An app's own key store (Android Keystore), here a map; `fail` makes it
 *  refuse to keep keys. */
class MemoryKeyStore(private val fail: Boolean = false) : KeyStore {
    val keys = java.util.concurrent.ConcurrentHashMap<String, ByteArray>()
    override fun saveKey(alias: String, key: ByteArray) {
        if (fail) throw KeyStoreException.Failed("the keystore is locked")
        keys[alias] = key.copyOf()
    }
    override fun loadKey(alias: String): ByteArray? = keys[alias]
    override fun deleteKey(alias: String) { keys.remove(alias) }
}

fun smallVisit(code: String) = NewVisitInput(
    unitCode = code, unitName = "UBND phường Cái Khế", unitKind = "commune_committee", area = "Ninh Kiều",
    campaign = "cantho-2015", scheduledOn = "2015-09-01",
    roster = listOf(StaffInput("k-1", "Đỗ Thị Hoa", "Công chức tư pháp", "civil_servant", true)),
)

fun hex(b: ByteArray) = b.joinToString("") { "%02x".format(it) }

fun asyncAndKeyStore(template: String) = runBlocking {
    // a key store that cannot keep the key stops enrollment before the network
    val kPath = "$work/phone-k/store.db"
    val code = enrollmentCode("insp-kt-key", "inspector")
    try {
        enrollAsync(kPath, url, code, "Điện thoại K", keyStore = MemoryKeyStore(fail = true))
        check("a failing key store stops the enrollment", false, "enrolled")
    } catch (e: ApiException.KeyStore) {
        check("a failing key store stops the enrollment, saying why", "locked" in e.toString(), e.toString())
    }
    val keys = MemoryKeyStore()
    var k = enrollAsync(kPath, url, code, "Điện thoại K", keyStore = keys)
    check("the same code then enrolls (suspend enrollAsync)", k.identity().userId == "insp-kt-key")
    val alias = keys.keys.keys.firstOrNull() ?: "none"
    check("the app's key store holds the device key", keys.keys.size == 1 && alias.startsWith("kiemtra-device-"), alias)
    val key = keys.keys[alias] ?: ByteArray(0)
    val onDisk = File("$work/phone-k").listFiles().orEmpty().filter { it.name.startsWith("store.db") }
        .joinToString("") { String(it.readBytes(), Charsets.ISO_8859_1) }
    check("the store's files do not hold the key",
        key.isNotEmpty() && hex(key) !in onDisk && String(key, Charsets.ISO_8859_1) !in onDisk)
    val kv = k.createVisit(smallVisit("ubnd-phuong-cai-khe"), template)
    kv.recordAttendance("k-1", "present")
    var report = k.syncAsync()
    check("a sync signed with the app-kept key is accepted (suspend syncAsync)",
        report.visitsUploaded == 1uL && report.errors.isEmpty(), report.toString())
    k.closeStore()
    raises<ApiException.KeyStore>("opening without the app's key store is refused") { DeviceStore.open(kPath) }
    raises<ApiException.KeyStore>("a key store without the key is refused") { DeviceStore.open(kPath, MemoryKeyStore()) }
    val wrong = MemoryKeyStore().also { it.keys[alias] = ByteArray(83) { 0x30 } }
    raises<ApiException.KeyStore>("a key store holding something else is refused") { DeviceStore.open(kPath, keyStore = wrong) }
    k = DeviceStore.open(kPath, keyStore = keys)
    k.openVisit(kv.id()).recordAttendance("k-1", "late", note = "đến 8 giờ")
    report = k.syncAsync(uploadEvidence = false)
    check("reopened with its key store, the device signs what the server accepts",
        report.visitsUploaded == 1uL && report.errors.isEmpty() && report.evidence == null, report.toString())
    check("suspend refreshTeamAsync", k.refreshTeamAsync() >= 1u)
    val up = k.uploadEvidenceAsync()
    check("suspend uploadEvidenceAsync with nothing waiting", up.uploaded == 0uL && up.errors.isEmpty(), up.toString())

    // a sync on a link that hangs, given up by cancelling its coroutine
    val st = enrollAsync("$work/phone-stall/store.db", stallUrl, enrollmentCode("insp-kt-stall", "inspector"),
        "Điện thoại mất sóng")
    st.setRetryPolicy(RetryPolicy(timeoutMs = 600_000uL, maxAttempts = 1u, baseBackoffMs = 100uL, maxBackoffMs = 100uL))
    val sv = st.createVisit(smallVisit("ubnd-xa-thoi-an"), template)
    sv.recordAttendance("k-1", "absent", "sick")
    var outcome = "running"
    val job = launch(Dispatchers.Default) {
        try {
            st.syncAsync()
            outcome = "finished"
        } catch (e: CancellationException) {
            outcome = "cancelled"
            throw e
        }
    }
    delay(500)
    check("the sync waits on the hung link", job.isActive)
    job.cancelAndJoin()
    check("cancelling the coroutine cancels the sync", outcome == "cancelled", outcome)
    // the call itself stopped and let go of the store: a blocking call on
    // another thread gets it (it would wait for the sync otherwise)
    val free = runCatching { CompletableFuture.supplyAsync { st.listVisits().size }.get(120, TimeUnit.SECONDS) }
    check("the cancelled call let go of the store", free.getOrNull() == 1, free.toString())
    val token = CancelToken()
    val call = async(Dispatchers.Default) { runCatching { st.syncAsync(cancel = token) } }
    delay(300)
    token.cancel()
    val ended = withTimeoutOrNull(120_000) { call.await() }
    check("a token cancels a suspended sync (ApiException.Cancelled)",
        ended?.exceptionOrNull() is ApiException.Cancelled, ended.toString())
    check("what was recorded before the cancelled syncs is kept",
        attendanceOf(st.openVisit(sv.id()).state(), "k-1") == ("absent" to "sick"))
}

fun main() {
    try {
        scenario()
    } catch (e: Throwable) {
        e.printStackTrace()
        failed++
        println("aborted: $e")
    }
    println("bindings[kotlin]: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
