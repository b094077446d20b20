//! The acceptance rule: honest histories pass whole and change by change;
//! crafted changes (made with Automerge's own low-level API) are refused
//! with nothing applied; auditing a stored history finds every refused write.

mod common;

use automerge::legacy as am;
use automerge::{ActorId, Change, ChangeHash, ROOT, ReadDoc, ScalarValue};
use common::*;
use kiemtra_core::*;
use proptest::prelude::*;
use std::num::NonZeroU64;

/// Users named `insp…` are inspectors; everyone else a supervisor.
fn roles(e: &Editor) -> Option<Role> {
    if e.user.as_str().starts_with("insp") {
        Some(Role::Inspector)
    } else if e.user.as_str().starts_with("aud") {
        Some(Role::Auditor)
    } else {
        Some(Role::Supervisor)
    }
}

const NO_LIMIT: usize = usize::MAX;

fn inspector(user: &str, device: &str, offset: i64) -> Session {
    session(user, device, offset).with_role(Role::Inspector)
}

fn insp_replica(v: &Visit, user: &str, device: &str) -> Visit {
    Visit::load(&v.save(), &inspector(user, device, 5)).expect("replica")
}

fn server_copy(v: &Visit) -> Visit {
    let (visit, _) =
        Visit::accept_new(&v.save(), &session("server", "server", 0), &roles, NO_LIMIT)
            .expect("the honest document is accepted");
    visit
}

/// The changes of `v` after `base` as bytes (what a device uploads).
fn after(v: &Visit, base: &Visit) -> Vec<u8> {
    v.save_after(&base.heads())
}

#[test]
fn an_honest_visit_is_accepted_whole_and_change_by_change() {
    let base = create(20);
    let mut server = server_copy(&base);
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    let mut b = insp_replica(&base, "insp-b", "phone-b");
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    a.record_attendance(&staff(1), absent(AbsenceReason::Sick), "ốm", None)
        .expect("rec");
    a.record_conduct(&staff(0), ConductKind::Badge, ConductResult::Violation, "")
        .expect("conduct");
    a.splice_narrative(0, 0, "Đoàn đến lúc 7 giờ 30.")
        .expect("narrative");
    a.splice_narrative(3, 2, "x").expect("narrative edit");
    let f = a
        .add_finding(NewFinding {
            category: "Kỷ luật".into(),
            severity: Severity::ALL[0],
            text: "Không đeo thẻ".into(),
            recommendation: String::new(),
            related_staff: vec![staff(0)],
        })
        .expect("finding");
    a.update_finding(&f, FindingValue::Withdrawn(true))
        .expect("withdraw");
    let hash = EvidenceHash::parse(&"ab".repeat(32)).expect("hash");
    let check_id = template().checks[0].id.clone();
    a.record_check(&check_id, CheckResult::ALL[0], "")
        .expect("check");
    a.attach_evidence(&check_id, &hash).expect("attach");
    a.detach_evidence(&check_id, &hash).expect("detach");
    a.add_staff(
        StaffMember::new(
            StaffId::parse("s-new").expect("id"),
            "Võ Thị Em",
            "",
            StaffCategory::Contract,
            false,
        )
        .expect("member"),
    )
    .expect("add staff");
    // b records the same person differently, concurrently: a conflict.
    b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("rec");
    b.splice_narrative(0, 0, "B: ").expect("narrative");

    let up_a = after(&a, &base);
    let accepted = server
        .accept_remote(&up_a, &roles, NO_LIMIT)
        .expect("a's changes");
    assert!(!accepted.is_empty());
    assert!(accepted.iter().all(|x| x.author.user.as_str() == "insp-a"));
    server
        .accept_remote(&after(&b, &base), &roles, NO_LIMIT)
        .expect("b's concurrent changes");
    // Offering the same changes again accepts nothing new.
    assert!(
        server
            .accept_remote(&up_a, &roles, NO_LIMIT)
            .expect("again")
            .is_empty()
    );
    assert_eq!(server.conflicts().expect("conflicts").len(), 1);

    // b submits after merging; the supervisor settles, approves.
    let before_b = Visit::load(&b.save(), &session("x", "x", 0)).expect("copy");
    b.merge(&server).expect("merge");
    let mut sup = Visit::load(&server.save(), &session("sup-1", "desk", 90)).expect("sup");
    let field = sup.conflicts().expect("c")[0].field.clone();
    sup.resolve(&field, 1).expect("resolve");
    sup.submit("").expect("submit");
    sup.approve("").expect("approve");
    let _ = before_b;
    let up_sup = sup.save_after(&server.heads());
    server
        .accept_remote(&up_sup, &roles, NO_LIMIT)
        .expect("the supervisor's settling and approval");
    assert_eq!(server.state().expect("s").status(), VisitStatus::Approved);
    assert!(server.audit_history(&roles).is_empty());
    // The whole document, received as new, passes too.
    let whole = server_copy(&server);
    assert_eq!(whole.heads().len(), server.heads().len());
}

#[test]
fn a_refused_change_leaves_the_document_unchanged() {
    let base = create(3);
    let mut server = server_copy(&base);
    let before = server.heads();
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    a.submit("").expect("submit");
    let mut sup = Visit::load(&a.save(), &session("sup-1", "desk", 9)).expect("sup");
    sup.approve("").expect("approve");
    // An inspector's device replaying the supervisor's approval in its own name
    // is an inspector writing an approval.
    let bytes = sup.save_after(&base.heads());
    let as_inspector = |_: &Editor| Some(Role::Inspector);
    let e = server
        .accept_remote(&bytes, &as_inspector, NO_LIMIT)
        .expect_err("refused");
    assert_eq!(e.kind, RefusalKind::Denied, "{e}");
    assert_eq!(server.heads(), before);
    // Unknown authors are refused.
    let nobody = |_: &Editor| None;
    let e = server
        .accept_remote(&after(&a, &base), &nobody, NO_LIMIT)
        .expect_err("unknown");
    assert_eq!(e.kind, RefusalKind::Denied);
    // Auditors never write.
    let auditor = |_: &Editor| Some(Role::Auditor);
    let e = server
        .accept_remote(&after(&a, &base), &auditor, NO_LIMIT)
        .expect_err("auditor");
    assert_eq!(e.kind, RefusalKind::Denied);
    // Over the request's op budget.
    let e = server
        .accept_remote(&after(&a, &base), &roles, 0)
        .expect_err("budget");
    assert_eq!(e.kind, RefusalKind::Invalid);
    assert_eq!(server.heads(), before);
}

// ----- crafted changes ---------------------------------------------------

/// Builds changes by hand on top of a visit, as a hostile device would.
struct Forge {
    actor: ActorId,
    author: Editor,
    seq: u64,
    /// The author footer Automerge writes into an actor's first change.
    footer: Vec<u8>,
}

impl Forge {
    fn new(user: &str, device: &str) -> Self {
        let mut doc = automerge::Automerge::new();
        doc.set_author(Some(automerge::Author::from(
            format!("{device}/{user}").into_bytes(),
        )));
        let mut tx = doc.transaction();
        automerge::transaction::Transactable::put(&mut tx, ROOT, "k", "v").expect("put");
        tx.commit();
        let footer = doc.get_changes(&[])[0].decode().extra_bytes;
        Self {
            actor: ActorId::from(vec![0xee; 16]),
            author: Editor::new(
                UserId::parse(user).expect("user"),
                DeviceId::parse(device).expect("device"),
            ),
            seq: 0,
            footer,
        }
    }

    fn change(&mut self, on: &Visit, ops: Vec<am::Op>) -> Change {
        self.seq += 1;
        let deps = on.heads();
        self.change_with(on, self.seq, deps, ops)
    }

    fn change_with(&self, on: &Visit, seq: u64, deps: Vec<ChangeHash>, ops: Vec<am::Op>) -> Change {
        let max_op = on
            .automerge()
            .get_changes_meta(&[])
            .iter()
            .map(|m| m.max_op)
            .max()
            .unwrap_or(0);
        Change::from(am::Change {
            operations: ops,
            actor_id: self.actor.clone(),
            hash: None,
            seq,
            start_op: NonZeroU64::new(max_op + 1).expect("nonzero"),
            time: 0,
            message: None,
            deps,
            extra_bytes: if seq == 1 {
                self.footer.clone()
            } else {
                Vec::new()
            },
            author: None,
        })
    }

    fn stamp(&self) -> String {
        format!(
            r#""by":"{}","device":"{}","at":"2015-08-31T02:00:00Z""#,
            self.author.user, self.author.device
        )
    }
}

fn op_id(ex: &automerge::ObjId) -> am::OpId {
    match ex {
        automerge::ObjId::Id(c, a, _) => am::OpId(*c, a.clone()),
        automerge::ObjId::Root => panic!("root has no op id"),
    }
}

fn put(obj: am::ObjectId, key: &str, value: String, pred: Vec<am::OpId>) -> am::Op {
    am::Op {
        action: am::OpType::Put(ScalarValue::Str(value.into())),
        obj,
        key: am::Key::Map(key.into()),
        pred: pred.into(),
        insert: false,
    }
}

fn del(obj: am::ObjectId, key: &str, pred: Vec<am::OpId>) -> am::Op {
    am::Op {
        action: am::OpType::Delete,
        obj,
        key: am::Key::Map(key.into()),
        pred: pred.into(),
        insert: false,
    }
}

fn container(v: &Visit, key: &str) -> (am::ObjectId, automerge::ObjId) {
    let (_, ex) = v
        .automerge()
        .get(ROOT, key)
        .expect("read")
        .expect("container");
    (am::ObjectId::Id(op_id(&ex)), ex)
}

fn visible(v: &Visit, obj: &automerge::ObjId, key: &str) -> Vec<am::OpId> {
    v.automerge()
        .get_all(obj, key)
        .expect("read")
        .into_iter()
        .map(|(_, ex)| op_id(&ex))
        .collect()
}

fn refused(v: &mut Visit, c: Change) -> Refusal {
    let before = v.heads();
    let bytes = c.raw_bytes().to_vec();
    let e = v
        .accept_remote(&bytes, &roles, NO_LIMIT)
        .expect_err("a crafted change is refused");
    assert_eq!(v.heads(), before, "nothing applied");
    e
}

fn attendance_json(f: &Forge, mark: &str) -> String {
    format!(
        r#"{{"value":{{"mark":{{"status":"{mark}"}},"observed_at":"2015-08-31T02:00:00Z"}},{}}}"#,
        f.stamp()
    )
}

#[test]
fn a_well_formed_forged_change_passes_so_the_forge_is_right() {
    let mut v = server_copy(&create(3));
    let mut f = Forge::new("insp-x", "phone-x");
    let (att, _) = container(&v, "attendance");
    let c = f.change(
        &v,
        vec![put(att, "s-000", attendance_json(&f, "present"), vec![])],
    );
    v.accept_remote(c.raw_bytes(), &roles, NO_LIMIT)
        .expect("a forged but honest change passes");
    assert_eq!(v.tally().expect("tally").present, 1);
}

#[test]
fn structurally_broken_changes_are_invalid() {
    let mut v = server_copy(&create(3));
    let (att, att_ex) = container(&v, "attendance");
    let f = Forge::new("insp-x", "phone-x");
    let good = || {
        vec![put(
            att.clone(),
            "s-000",
            attendance_json(&f, "present"),
            vec![],
        )]
    };
    // A new actor whose first change has seq 2.
    let c = f.change_with(&v, 2, v.heads(), good());
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // An op on an object that does not exist.
    let ghost = am::ObjectId::Id(am::OpId(999, ActorId::from(vec![1u8; 16])));
    let c = f.change_with(&v, 1, v.heads(), vec![put(ghost, "x", "{}".into(), vec![])]);
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // A pred naming an op that does not exist.
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            att.clone(),
            "s-000",
            attendance_json(&f, "present"),
            vec![am::OpId(77_777, ActorId::from(vec![3u8; 16]))],
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // A pred naming an op of another key.
    let status_ops = visible(&v, &automerge::ObjId::Root, "status");
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            att.clone(),
            "s-000",
            attendance_json(&f, "present"),
            status_ops,
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // A gap in the actor's seq: seq 1 accepted, then seq 3.
    let c1 = f.change_with(&v, 1, v.heads(), good());
    v.accept_remote(c1.raw_bytes(), &roles, NO_LIMIT)
        .expect("seq 1");
    let pred = visible(&v, &att_ex, "s-000");
    let c3 = f.change_with(
        &v,
        3,
        v.heads(),
        vec![put(att.clone(), "s-000", attendance_json(&f, "late"), pred)],
    );
    assert_eq!(refused(&mut v, c3).kind, RefusalKind::Invalid);
    // A missing dependency asks for a fuller exchange.
    let c = f.change_with(&v, 2, vec![ChangeHash([9u8; 32])], good());
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Missing);
    // A change with no past writing into the visit's containers (which
    // its past, being empty, does not hold), by a new actor: refused on a
    // stored visit, and in a new visit's history.
    let mut g = Forge::new("insp-y", "phone-y");
    g.actor = ActorId::from(vec![0xdd; 16]);
    let rootless = g.change_with(
        &v,
        1,
        Vec::new(),
        vec![put(
            att.clone(),
            "s-001",
            attendance_json(&g, "present"),
            vec![],
        )],
    );
    let e = refused(&mut v, rootless.clone());
    assert_eq!(e.kind, RefusalKind::Invalid, "{e}");
    assert!(e.reason.contains("depends on no change"), "{e}");
    let mut whole = chunks_of(&v);
    whole.extend_from_slice(rootless.raw_bytes());
    let e = Visit::accept_new(&whole, &session("server", "server", 0), &roles, NO_LIMIT)
        .expect_err("a rootless change in a new visit's history");
    assert!(e.reason.contains("depends on no change"), "{e}");
}

#[test]
fn inspectors_cannot_write_what_only_supervisors_may() {
    let base = create(3);
    let mut v = server_copy(&base);
    let (att, att_ex) = container(&v, "attendance");
    // A conflict on s-000 from two honest inspectors.
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    let mut b = insp_replica(&base, "insp-b", "phone-b");
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("b");
    v.accept_remote(&after(&a, &base), &roles, NO_LIMIT)
        .expect("a");
    v.accept_remote(&after(&b, &base), &roles, NO_LIMIT)
        .expect("b");
    assert_eq!(v.conflicts().expect("c").len(), 1);
    let shown = visible(&v, &att_ex, "s-000");
    assert_eq!(shown.len(), 2);
    let mut f = Forge::new("insp-x", "phone-x");
    // Settling with a Delete alone.
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![del(att.clone(), "s-000", shown.clone())],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Denied);
    // A Delete then a Put.
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![
            del(att.clone(), "s-000", shown.clone()),
            put(att.clone(), "s-000", attendance_json(&f, "present"), vec![]),
        ],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Denied);
    // A Put over both.
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            att.clone(),
            "s-000",
            attendance_json(&f, "present"),
            shown.clone(),
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Denied);
    // A Put over one of them only hides nothing but does not supersede what was seen.
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            att.clone(),
            "s-000",
            attendance_json(&f, "present"),
            vec![shown[0].clone()],
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // Deleting a value with no conflict: values are never deleted.
    let one = visible(&v, &automerge::ObjId::Root, "status");
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![del(am::ObjectId::Root, "status", one.clone())],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // Rewriting meta (e.g. the team).
    let meta_ops = visible(&v, &automerge::ObjId::Root, "meta");
    let mut meta = v.meta().expect("meta");
    meta.team = TeamId::parse("team-2").expect("team");
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            am::ObjectId::Root,
            "meta",
            serde_json::to_string(&meta).expect("json"),
            meta_ops,
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // Approving, returning.
    for status in ["approved", "returned"] {
        let json = format!(r#"{{"value":{{"status":"{status}"}},{}}}"#, f.stamp());
        let c = f.change_with(
            &v,
            1,
            v.heads(),
            vec![put(am::ObjectId::Root, "status", json, one.clone())],
        );
        assert_eq!(refused(&mut v, c).kind, RefusalKind::Denied, "{status}");
    }
    // A stamp naming someone else.
    let other = r#"{"value":{"mark":{"status":"present"},"observed_at":"2015-08-31T02:00:00Z"},"by":"insp-a","device":"phone-a","at":"2015-08-31T02:00:00Z"}"#.to_owned();
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(att.clone(), "s-001", other, vec![])],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    // Replacing the approvals map with a new object.
    let (_, appr_ex) = container(&v, "approvals");
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![am::Op {
            action: am::OpType::Make(automerge::ObjType::Map),
            obj: am::ObjectId::Root,
            key: am::Key::Map("approvals".into()),
            pred: vec![op_id(&appr_ex)].into(),
            insert: false,
        }],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    let _ = f.change(&v, vec![]);
}

#[test]
fn approved_visits_do_not_move_back_and_approvals_are_only_added() {
    let base = create(3);
    let mut v = server_copy(&base);
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    a.submit("").expect("submit");
    let mut sup = Visit::load(&a.save(), &session("sup-1", "desk", 9)).expect("sup");
    sup.approve("").expect("approve");
    v.accept_remote(&sup.save_after(&base.heads()), &roles, NO_LIMIT)
        .expect("approved");
    let status = visible(&v, &automerge::ObjId::Root, "status");
    let (appr, appr_ex) = container(&v, "approvals");
    let key = v.automerge().keys(&appr_ex).next().expect("approval");
    let record = visible(&v, &appr_ex, &key);
    for who in ["insp-x", "sup-x"] {
        let f = Forge::new(who, "dev-x");
        for to in ["submitted", "draft"] {
            let json = format!(r#"{{"value":{{"status":"{to}"}},{}}}"#, f.stamp());
            let c = f.change_with(
                &v,
                1,
                v.heads(),
                vec![put(am::ObjectId::Root, "status", json, status.clone())],
            );
            assert_eq!(
                refused(&mut v, c).kind,
                RefusalKind::Invalid,
                "{who} → {to}"
            );
        }
        // Dropping the approval.
        let c = f.change_with(
            &v,
            1,
            v.heads(),
            vec![del(appr.clone(), &key, record.clone())],
        );
        assert!(matches!(
            refused(&mut v, c).kind,
            RefusalKind::Invalid | RefusalKind::Denied
        ));
    }
    // A copied approval record under a new id, by a supervisor: it names
    // heads other than the change's own and another id.
    let (_, json) = v
        .automerge()
        .get(&appr_ex, key.as_str())
        .expect("read")
        .expect("record");
    let json = json.to_string();
    let f = Forge::new("sup-x", "dev-x");
    let copied = v.state().expect("s").approvals[0].clone();
    let c = f.change_with(
        &v,
        1,
        v.heads(),
        vec![put(
            appr.clone(),
            "a-copy",
            serde_json::to_string(&copied).expect("json"),
            vec![],
        )],
    );
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
    let _ = json;
}

#[test]
fn a_huge_narrative_is_refused() {
    let base = create(3);
    let mut v = server_copy(&base);
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    let long = "x".repeat(MAX_NARRATIVE);
    a.splice_narrative(0, 0, &long)
        .expect("the longest narrative");
    v.accept_remote(&after(&a, &base), &roles, NO_LIMIT)
        .expect("at the limit");
    // One more character, forged past the typed API's check.
    let (_, narrative) = v.automerge().get(ROOT, "narrative").expect("r").expect("n");
    let f = Forge::new("insp-x", "phone-x");
    let op = am::Op {
        action: am::OpType::Put(ScalarValue::Str("y".into())),
        obj: am::ObjectId::Id(op_id(&narrative)),
        key: am::Key::Seq(am::ElementId::Head),
        pred: Vec::new().into(),
        insert: true,
    };
    let c = f.change_with(&v, 1, v.heads(), vec![op]);
    assert_eq!(refused(&mut v, c).kind, RefusalKind::Invalid);
}

#[test]
fn auditing_finds_refused_writes_in_stored_history() {
    // A document that a permissive build stored: an inspector settled a
    // conflict and approved.
    let base = create(3);
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    let mut b = insp_replica(&base, "insp-b", "phone-b");
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("b");
    a.merge(&b).expect("merge");
    // The inspector's app would refuse; a session claiming to be a
    // supervisor on the inspector's device writes it anyway.
    let mut forged = Visit::load(&a.save(), &session("insp-a", "phone-a", 30)).expect("load");
    let field = forged.conflicts().expect("c")[0].field.clone();
    forged.resolve(&field, 0).expect("settle");
    forged.submit("").expect("submit");
    forged.approve("").expect("approve");
    let problems = forged.audit_history(&roles);
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(problems.iter().all(|p| p.change.is_some()));
    assert!(problems.iter().any(|p| p.kind == RefusalKind::Denied));
}

// ----- hostile variations of honest changes -------------------------------

fn mutate(c: &Change, pick: usize, what: u8, n: u64) -> Change {
    let mut e = c.decode();
    match what % 8 {
        0 => e.seq = e.seq.wrapping_add(n % 3 + 1),
        1 => e.start_op = NonZeroU64::new((e.start_op.get() + n) % 50 + 1).expect("nonzero"),
        2 => {
            if !e.deps.is_empty() {
                e.deps.remove(0);
            }
        }
        3 => {
            let at = pick % e.operations.len().max(1);
            if let Some(op) = e.operations.get_mut(at) {
                op.pred = vec![am::OpId(n % 40 + 1, e.actor_id.clone())].into();
            }
        }
        4 => {
            let at = pick % e.operations.len().max(1);
            if let Some(op) = e.operations.get_mut(at) {
                op.obj = am::ObjectId::Id(am::OpId(n % 40 + 1, e.actor_id.clone()));
            }
        }
        5 => {
            let at = pick % e.operations.len().max(1);
            if let Some(op) = e.operations.get_mut(at) {
                op.action = am::OpType::Delete;
            }
        }
        6 => {
            let at = pick % e.operations.len().max(1);
            if let Some(op) = e.operations.get_mut(at) {
                op.key = am::Key::Map(format!("k{n}").into());
            }
        }
        _ => {
            let at = pick % e.operations.len().max(1);
            if let Some(op) = e.operations.get_mut(at) {
                op.insert = !op.insert;
            }
        }
    }
    e.hash = None;
    Change::from(e)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Mutated versions of an honest upload never panic, and whatever is
    /// accepted passes the audit of the resulting history.
    #[test]
    fn mutated_changes_never_panic_and_what_passes_audits_clean(
        which in 0usize..8, pick in 0usize..64, what in 0u8..8, n in 0u64..1000,
    ) {
        let base = create(4);
        let mut a = insp_replica(&base, "insp-a", "phone-a");
        a.record_attendance(&staff(0), AttendanceMark::Present, "", None).expect("a");
        a.splice_narrative(0, 0, "Biên bản").expect("n");
        a.splice_narrative(2, 3, "").expect("n");
        a.record_conduct(&staff(1), ConductKind::Badge, ConductResult::Violation, "").expect("c");
        a.submit("").expect("submit");
        let changes = a.automerge().get_changes(&base.heads());
        let mut bytes = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            let c = if i == which % changes.len() { mutate(c, pick, what, n) } else { c.clone() };
            bytes.extend_from_slice(c.raw_bytes());
        }
        let mut v = server_copy(&base);
        let before = v.heads();
        match v.accept_remote(&bytes, &roles, NO_LIMIT) {
            Ok(_) => prop_assert!(v.audit_history(&roles).is_empty()),
            Err(_) => prop_assert_eq!(v.heads(), before),
        }
    }
}

#[test]
fn a_supervisor_settles_with_any_candidate_and_a_status_conflict() {
    for pick in 0..2 {
        let base = create(3);
        let mut v = server_copy(&base);
        let mut a = insp_replica(&base, "insp-a", "phone-a");
        let mut b = insp_replica(&base, "insp-b", "phone-b");
        a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
            .expect("a");
        b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
            .expect("b");
        a.submit("").expect("a submits");
        b.submit("").expect("b submits");
        v.accept_remote(&after(&a, &base), &roles, NO_LIMIT)
            .expect("a");
        v.accept_remote(&after(&b, &base), &roles, NO_LIMIT)
            .expect("b");
        let mut sup = Visit::load(&v.save(), &session("sup-1", "desk", 40)).expect("sup");
        for c in sup.conflicts().expect("conflicts") {
            sup.resolve(&c.field, pick).expect("resolve");
        }
        sup.return_visit("thiếu biên bản").expect("return");
        v.accept_remote(&sup.save_after(&v.heads()), &roles, NO_LIMIT)
            .expect("the supervisor's settling passes");
        assert!(v.conflicts().expect("c").is_empty());
        assert_eq!(v.state().expect("s").status(), VisitStatus::Returned);
    }
}

#[test]
fn an_approval_after_a_return_and_a_photo_is_accepted() {
    let base = create(3);
    let mut server = server_copy(&base);
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    let mut sup = Visit::load(&base.save(), &session("sup-1", "desk", 9)).expect("sup");
    a.submit("xong").expect("submit");
    server
        .accept_remote(&after(&a, &base), &roles, NO_LIMIT)
        .expect("submit");
    sup.merge(&server).expect("merge");
    let h0 = server.heads();
    sup.return_visit("bổ sung ảnh").expect("return");
    server
        .accept_remote(&sup.save_after(&h0), &roles, NO_LIMIT)
        .expect("return");
    a.merge(&server).expect("merge");
    let h1 = server.heads();
    let check_id = template().checks[0].id.clone();
    a.attach_evidence(
        &check_id,
        &EvidenceHash::parse(&"cd".repeat(32)).expect("h"),
    )
    .expect("attach");
    a.submit("đã bổ sung").expect("submit");
    server
        .accept_remote(&a.save_after(&h1), &roles, NO_LIMIT)
        .expect("resubmit");
    sup.merge(&server).expect("merge");
    let h2 = server.heads();
    sup.approve("đồng ý").expect("approve");
    server
        .accept_remote(&sup.save_after(&h2), &roles, NO_LIMIT)
        .expect("approval");
}

/// Writes the `change_accept` fuzz target's base visit and seed inputs
/// into `$KIEMTRA_FUZZ_DIR` (`fuzz/`): honest uploads (change chunks and
/// whole documents) on that base, which the fuzzer then mutates.
#[test]
#[ignore = "writes the change_accept fuzz target's seeds; run by hand"]
fn write_fuzz_seeds() {
    let dir =
        std::path::PathBuf::from(std::env::var("KIEMTRA_FUZZ_DIR").expect("KIEMTRA_FUZZ_DIR"));
    let corpus = dir.join("corpus/change_accept");
    std::fs::create_dir_all(&corpus).expect("mkdir");
    let base = create(4);
    std::fs::write(dir.join("seeds/base.visit"), base.save()).expect("base");
    let mut a = insp_replica(&base, "insp-a", "phone-a");
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    std::fs::write(corpus.join("one-mark"), after(&a, &base)).expect("w");
    a.record_conduct(
        &staff(1),
        ConductKind::Badge,
        ConductResult::Violation,
        "không đeo thẻ",
    )
    .expect("c");
    a.splice_narrative(0, 0, "Biên bản kiểm tra").expect("n");
    a.splice_narrative(3, 4, "").expect("n");
    let f = a
        .add_finding(NewFinding {
            category: "Kỷ luật".into(),
            severity: Severity::ALL[1],
            text: "Không đeo thẻ".into(),
            recommendation: String::new(),
            related_staff: vec![staff(1)],
        })
        .expect("finding");
    a.update_finding(&f, FindingValue::Withdrawn(true))
        .expect("w");
    a.submit("").expect("submit");
    std::fs::write(corpus.join("a-day"), after(&a, &base)).expect("w");
    std::fs::write(corpus.join("whole-document"), a.save()).expect("w");
    let mut sup = Visit::load(&a.save(), &session("sup-1", "desk", 9)).expect("sup");
    sup.approve("").expect("approve");
    std::fs::write(corpus.join("approved"), sup.save_after(&base.heads())).expect("w");
}

/// A change the fuzzer found: plausible ops, encoded other than Automerge
/// writes them, so that the stored document would re-encode it under
/// another hash (and a later read of its history panicked inside
/// Automerge). Recorded on the fuzz target's base visit.
#[test]
fn a_change_encoded_otherwise_than_automerge_writes_it_is_refused() {
    let base = include_bytes!("../../../fuzz/seeds/base.visit");
    let data = include_bytes!("data/non-canonical-change.bin");
    let server = session("server", "server", 0);
    let mut visit = Visit::load(base, &server).expect("base");
    let before = visit.heads();
    let e = visit
        .accept_remote(data, &roles, NO_LIMIT)
        .expect_err("refused");
    assert_eq!(e.kind, RefusalKind::Invalid);
    assert!(
        e.reason.contains("not encoded as Automerge writes it"),
        "{e}"
    );
    assert_eq!(visit.heads(), before);
    // The same ops, encoded by Automerge, are accepted.
    let c = Change::from_bytes(data.to_vec()).expect("parses");
    let canonical = Change::from(c.decode());
    visit
        .accept_remote(canonical.raw_bytes(), &roles, NO_LIMIT)
        .expect("the canonical encoding passes");
    assert!(visit.audit_history(&roles).is_empty());
}

/// A change the fuzzer found that Automerge parses but then panics on
/// when decoding its ops (an op naming an actor the change does not list):
/// the panic is caught and the change refused, nothing applied.
#[test]
fn a_change_automerge_cannot_decode_is_refused() {
    let base = include_bytes!("../../../fuzz/seeds/base.visit");
    let data = include_bytes!("data/undecodable-change.bin");
    let server = session("server", "server", 0);
    let mut visit = Visit::load(base, &server).expect("base");
    let before = visit.heads();
    let e = visit
        .accept_remote(data, &roles, NO_LIMIT)
        .expect_err("refused");
    assert_eq!(e.kind, RefusalKind::Invalid);
    assert_eq!(visit.heads(), before);
    assert!(Visit::accept_new(data, &server, &roles, NO_LIMIT).is_err());
}

/// Every change of `v` as change chunks, as a device may upload a new visit.
fn chunks_of(v: &Visit) -> Vec<u8> {
    v.automerge()
        .get_changes(&[])
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect()
}

#[test]
fn a_first_change_that_writes_a_field_twice_is_refused() {
    let v = create(3);
    let first = v.automerge().get_changes(&[])[0].clone();
    let mut d = first.decode();
    let status = d
        .operations
        .iter()
        .find(|op| op.key == am::Key::Map("status".into()))
        .cloned()
        .expect("the status op");
    d.operations.push(status);
    d.hash = None;
    let twice = Change::from(d);
    let server = session("server", "server", 0);
    let e = Visit::accept_new(twice.raw_bytes(), &server, &roles, NO_LIMIT)
        .expect_err("a field written twice is refused");
    assert_eq!(e.kind, RefusalKind::Invalid, "{e}");
    assert!(e.reason.contains("status twice"), "{e}");
    // The same history as written is accepted, so the refusal is the
    // duplicate's.
    Visit::accept_new(first.raw_bytes(), &server, &roles, NO_LIMIT)
        .expect("the honest first change");
}

#[test]
fn a_history_of_too_many_interleaved_actors_is_refused_not_expanded() {
    // Each change by a new actor depends on the last: every clock holds
    // every actor before it, so the clocks grow as the square of the count.
    let base = create(3);
    let f = Forge::new("insp-x", "phone-x");
    let mut bytes = chunks_of(&base);
    let start = base
        .automerge()
        .get_changes_meta(&[])
        .iter()
        .map(|m| m.max_op)
        .max()
        .expect("ops")
        + 1;
    let chain = |n: usize| {
        let mut out = Vec::new();
        let mut deps = base.heads();
        for i in 0..n {
            let mut actor = vec![0xab; 16];
            actor[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let c = Change::from(am::Change {
                operations: Vec::new(),
                actor_id: ActorId::from(actor),
                hash: None,
                seq: 1,
                start_op: NonZeroU64::new(start).expect("nonzero"),
                time: 0,
                message: None,
                deps: deps.clone(),
                extra_bytes: f.footer.clone(),
                author: None,
            });
            deps = vec![c.hash()];
            out.extend_from_slice(c.raw_bytes());
        }
        out
    };
    let server = session("server", "server", 0);
    // A few hundred actors (many more than an honest visit) pass.
    let mut few = bytes.clone();
    few.extend(chain(300));
    Visit::accept_new(&few, &server, &roles, NO_LIMIT).expect("300 actors are checked");
    bytes.extend(chain(3_000));
    let e = Visit::accept_new(&bytes, &server, &roles, NO_LIMIT)
        .expect_err("3,000 interleaved actors are refused");
    assert_eq!(e.kind, RefusalKind::Invalid, "{e}");
    assert!(e.reason.contains("clock entries"), "{e}");
}

// ----- valued office checks ---------------------------------------------

/// A forged write of the office check `key` holding `entry` (a
/// `CheckEntry`'s JSON), on top of `v`.
fn check_write(v: &Visit, f: &Forge, key: &str, entry: &str) -> Change {
    let (checks, checks_ex) = container(v, "checks");
    let pred = visible(v, &checks_ex, key);
    f.change_with(
        v,
        1,
        v.heads(),
        vec![put(
            checks,
            key,
            format!(r#"{{"value":{entry},{}}}"#, f.stamp()),
            pred,
        )],
    )
}

#[test]
fn a_devices_check_value_that_does_not_fit_its_check_is_refused_with_a_reason() {
    let mut v = server_copy(&create_valued(1));
    let f = Forge::new("insp-x", "phone-x");
    let long = format!(
        r#"{{"result":"pass","value":{{"text":"{}"}}}}"#,
        "x".repeat(MAX_CHECK_TEXT + 1)
    );
    let cases: [(&str, &str, &str); 14] = [
        (
            "satisfaction-rate",
            r#"{"result":"pass","value":{"number":101}}"#,
            "101 is out of its range (0 to 100)",
        ),
        (
            "satisfaction-rate",
            r#"{"result":"fail","value":{"number":-3}}"#,
            "-3 is out of its range",
        ),
        (
            "satisfaction-rate",
            r#"{"result":"pass","value":{"choice":"modern"}}"#,
            "takes a number, not a choice",
        ),
        (
            "satisfaction-rate",
            r#"{"result":"pass"}"#,
            "needs a number unless it is not applicable",
        ),
        (
            "satisfaction-rate",
            r#"{"result":"not_applicable","value":{"number":5}}"#,
            "not applicable, so it takes no value",
        ),
        (
            "satisfaction-rate",
            r#"{"result":"pass","value":{"number":96.5}}"#,
            "unreadable office check value",
        ),
        (
            "one-stop-mode",
            r#"{"result":"pass","value":{"choice":"luxury"}}"#,
            "has no option \"luxury\"",
        ),
        (
            "one-stop-mode",
            r#"{"result":"pass","value":{"text":"modern"}}"#,
            "takes one of its options, not a text",
        ),
        (
            "one-stop-mode",
            r#"{"result":"pass","value":{"choice":"a/b"}}"#,
            "unreadable office check value",
        ),
        (
            "e-office-software",
            r#"{"result":"pass","value":{"text":" VNPT iOffice"}}"#,
            "not trimmed NFC",
        ),
        (
            "e-office-software",
            "{\"result\":\"pass\",\"value\":{\"text\":\"Pha\u{302}\u{300}n me\u{302}\u{300}m\"}}",
            "not trimmed NFC",
        ),
        (
            "e-office-software",
            r#"{"result":"pass","value":{"text":""}}"#,
            "must not be empty",
        ),
        ("e-office-software", long.as_str(), "too long"),
        (
            "hotline",
            r#"{"result":"pass","value":{"number":1}}"#,
            "takes no value (it is a pass/fail check), not a number",
        ),
    ];
    for (key, entry, says) in cases {
        let c = check_write(&v, &f, key, entry);
        let e = refused(&mut v, c);
        assert_eq!(e.kind, RefusalKind::Invalid, "{key} {entry}: {e}");
        assert!(
            e.reason.contains(says),
            "{key} {entry}: {e} should say {says:?}"
        );
    }
    // What fits passes: so each refusal above is its value's.
    for (key, entry) in [
        (
            "satisfaction-rate",
            r#"{"result":"pass","value":{"number":96}}"#,
        ),
        (
            "one-stop-mode",
            r#"{"result":"fail","value":{"choice":"none"}}"#,
        ),
        (
            "e-office-software",
            r#"{"result":"pass","value":{"text":"Phần mềm VNPT iOffice"}}"#,
        ),
        ("hotline", r#"{"result":"pass"}"#),
    ] {
        let mut fresh = server_copy(&create_valued(1));
        let c = check_write(&fresh, &f, key, entry);
        fresh
            .accept_remote(c.raw_bytes(), &roles, NO_LIMIT)
            .unwrap_or_else(|e| panic!("{key} {entry}: {e}"));
    }
}

#[test]
fn superseding_records_of_different_values_settles_a_conflict_and_equal_ones_do_not() {
    let base = create_valued(1);
    let rate = check("satisfaction-rate");
    let f = Forge::new("insp-x", "phone-x");
    let honest = r#"{"result":"pass","value":{"number":97}}"#;
    for (a_value, b_value, conflict) in [(96, 99, true), (96, 96, false)] {
        let mut v = server_copy(&base);
        let mut a = insp_replica(&base, "insp-a", "phone-a");
        let mut b = insp_replica(&base, "insp-b", "phone-b");
        a.record_check_value(&rate, CheckResult::Pass, CheckValue::Number(a_value), "")
            .expect("a");
        b.record_check_value(
            &rate,
            CheckResult::Pass,
            CheckValue::Number(b_value),
            "ghi chú",
        )
        .expect("b");
        v.accept_remote(&after(&a, &base), &roles, NO_LIMIT)
            .expect("a");
        v.accept_remote(&after(&b, &base), &roles, NO_LIMIT)
            .expect("b");
        assert_eq!(v.conflicts().expect("c").len(), usize::from(conflict));
        let c = check_write(&v, &f, "satisfaction-rate", honest);
        if conflict {
            let e = refused(&mut v, c);
            assert_eq!(e.kind, RefusalKind::Denied, "{e}");
        } else {
            v.accept_remote(c.raw_bytes(), &roles, NO_LIMIT)
                .expect("one observation recorded twice settles nothing");
        }
    }
}

#[test]
fn a_first_change_must_write_the_schema_its_template_needs() {
    let server = session("server", "server", 0);
    for (v, wrong, says) in [
        (create_valued(1), 1u64, "must write schema 2"),
        (create(1), 2, "must write schema 1"),
    ] {
        let first = v.automerge().get_changes(&[])[0].clone();
        Visit::accept_new(first.raw_bytes(), &server, &roles, NO_LIMIT)
            .expect("the honest first change");
        let mut d = first.decode();
        for op in &mut d.operations {
            if op.key == am::Key::Map("schema".into()) {
                op.action = am::OpType::Put(ScalarValue::Uint(wrong));
            }
        }
        d.hash = None;
        let e = Visit::accept_new(Change::from(d).raw_bytes(), &server, &roles, NO_LIMIT)
            .expect_err("a schema other than its template's");
        assert_eq!(e.kind, RefusalKind::Invalid, "{e}");
        assert!(e.reason.contains(says), "{e}");
    }
}
