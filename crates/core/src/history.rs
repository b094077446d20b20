//! History in domain terms: every change with its author and time, the visit
//! as of any point, and the difference between two points.

use automerge::{ChangeHash, ReadDoc};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::Result;
use crate::ids::{CheckId, EvidenceHash, FindingId, StaffId};
use crate::model::Lang;
use crate::session::{Editor, Stamp, Stamped};
use crate::state::{Approval, FieldRef, FieldValue, VisitState};
use crate::visit::Visit;

/// Viet Nam time (UTC+7, no daylight saving), for display only.
pub fn vietnam_time(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    const ICT_SECONDS: i32 = 7 * 3600;
    let ict = FixedOffset::east_opt(ICT_SECONDS).expect("UTC+7 is within ±24 h");
    t.with_timezone(&ict)
}

/// `09:12 02/09/2015`, in Viet Nam time.
pub fn format_time(t: DateTime<Utc>) -> String {
    vietnam_time(t).format("%H:%M %d/%m/%Y").to_string()
}

/// One thing that changed, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DomainChange {
    VisitCreated {
        unit: String,
        staff: usize,
    },
    StaffAdded {
        staff: StaffId,
        name: String,
    },
    /// A field's shown value changed, or the set of conflicting values did.
    Field {
        field: FieldRef,
        before: Option<FieldValue>,
        after: Option<Stamped<FieldValue>>,
        /// Candidates after the change; more than 1 means a conflict.
        candidates: usize,
    },
    EvidenceAttached {
        check: CheckId,
        hash: EvidenceHash,
    },
    EvidenceDetached {
        check: CheckId,
        hash: EvidenceHash,
    },
    FindingAdded {
        finding: FindingId,
        text: String,
        created: Stamp,
    },
    NarrativeEdited {
        before_chars: usize,
        after_chars: usize,
    },
    Approved {
        approval: Approval,
    },
}

impl DomainChange {
    /// One line, e.g. "Attendance of Nguyễn Văn A: present → absent
    /// (business trip), by insp-x at 09:12 02/09/2015".
    pub fn describe(&self, lang: Lang, state: &VisitState) -> String {
        let by_at = |s: &Stamp| match lang {
            Lang::Vi => format!("bởi {} lúc {}", s.by, format_time(s.at)),
            Lang::En => format!("by {} at {}", s.by, format_time(s.at)),
        };
        match self {
            DomainChange::VisitCreated { unit, staff } => match lang {
                Lang::Vi => format!("Tạo biên bản kiểm tra {unit} ({staff} người trong danh sách)"),
                Lang::En => format!("Visit to {unit} created ({staff} staff on the roster)"),
            },
            DomainChange::StaffAdded { name, .. } => match lang {
                Lang::Vi => format!("Bổ sung người có mặt ngoài danh sách: {name}"),
                Lang::En => format!("Staff found on site added: {name}"),
            },
            DomainChange::Field {
                field,
                before,
                after,
                candidates,
            } => {
                let none = match lang {
                    Lang::Vi => "(chưa ghi)".to_owned(),
                    Lang::En => "(not recorded)".to_owned(),
                };
                let b = before
                    .as_ref()
                    .map(|v| v.describe_for(field, lang, state))
                    .unwrap_or_else(|| none.clone());
                let a = after
                    .as_ref()
                    .map(|v| v.value.describe_for(field, lang, state))
                    .unwrap_or(none);
                let mut line = format!("{}: {b} → {a}", field.describe(lang, state));
                if let Some(s) = after {
                    line.push_str(", ");
                    line.push_str(&by_at(&s.stamp));
                }
                if *candidates > 1 {
                    line.push_str(&match lang {
                        Lang::Vi => format!(" [xung đột: {candidates} giá trị]"),
                        Lang::En => format!(" [conflict: {candidates} values]"),
                    });
                }
                line
            }
            DomainChange::EvidenceAttached { check, hash } => match lang {
                Lang::Vi => format!("Đính kèm minh chứng {} cho {check}", &hash.as_str()[..12]),
                Lang::En => format!("Evidence {} attached to {check}", &hash.as_str()[..12]),
            },
            DomainChange::EvidenceDetached { check, hash } => match lang {
                Lang::Vi => format!("Gỡ minh chứng {} khỏi {check}", &hash.as_str()[..12]),
                Lang::En => format!("Evidence {} removed from {check}", &hash.as_str()[..12]),
            },
            DomainChange::FindingAdded { text, created, .. } => match lang {
                Lang::Vi => format!("Ghi nhận tồn tại: «{text}», {}", by_at(created)),
                Lang::En => format!("Finding recorded: «{text}», {}", by_at(created)),
            },
            DomainChange::NarrativeEdited {
                before_chars,
                after_chars,
            } => match lang {
                Lang::Vi => format!("Sửa tường thuật ({before_chars} → {after_chars} ký tự)"),
                Lang::En => format!("Narrative edited ({before_chars} → {after_chars} characters)"),
            },
            DomainChange::Approved { approval } => match lang {
                Lang::Vi => format!("Phê duyệt biên bản, {}", by_at(&approval.stamp)),
                Lang::En => format!("Visit approved, {}", by_at(&approval.stamp)),
            },
        }
    }
}

/// The domain-level difference from `before` (None: nothing yet) to `after`.
pub fn diff_states(before: Option<&VisitState>, after: &VisitState) -> Vec<DomainChange> {
    let mut out = Vec::new();
    let Some(before) = before else {
        out.push(DomainChange::VisitCreated {
            unit: after.meta.unit.name.clone(),
            staff: after.staff.len(),
        });
        return out;
    };
    for (id, m) in &after.staff {
        if !before.staff.contains_key(id) {
            out.push(DomainChange::StaffAdded {
                staff: id.clone(),
                name: m.value.name.clone(),
            });
        }
    }
    let new_findings: BTreeSet<&FindingId> = after
        .findings
        .keys()
        .filter(|id| !before.findings.contains_key(*id))
        .collect();
    for id in &new_findings {
        if let Some(f) = after.findings.get(*id) {
            out.push(DomainChange::FindingAdded {
                finding: (*id).clone(),
                text: f.text().to_owned(),
                created: f.created.clone(),
            });
        }
    }
    let candidate_values = |state: &VisitState, field: &FieldRef| -> Vec<FieldValue> {
        state
            .conflicts()
            .into_iter()
            .find(|c| &c.field == field)
            .map(|c| c.candidates.into_iter().map(|s| s.value).collect())
            .unwrap_or_default()
    };
    let bf = before.fields();
    let af = after.fields();
    let conflicts_before: HashSet<FieldRef> =
        before.conflicts().into_iter().map(|c| c.field).collect();
    let conflicts_after: HashSet<FieldRef> =
        after.conflicts().into_iter().map(|c| c.field).collect();
    let all: BTreeSet<&FieldRef> = bf.keys().chain(af.keys()).collect();
    for field in all {
        if let FieldRef::Finding { finding, .. } = field
            && new_findings.contains(finding)
        {
            continue;
        }
        let b = bf.get(field);
        let a = af.get(field);
        let value_changed = b.map(|s| &s.value) != a.map(|s| &s.value);
        let conflict_changed = (conflicts_before.contains(field)
            || conflicts_after.contains(field))
            && candidate_values(before, field) != candidate_values(after, field);
        if value_changed || conflict_changed {
            let candidates = if conflicts_after.contains(field) {
                candidate_values(after, field).len()
            } else {
                usize::from(a.is_some())
            };
            out.push(DomainChange::Field {
                field: field.clone(),
                before: b.map(|s| s.value.clone()),
                after: a.cloned(),
                candidates,
            });
        }
    }
    for (check, hashes) in &after.evidence {
        for h in hashes {
            if !before.evidence.get(check).is_some_and(|s| s.contains(h)) {
                out.push(DomainChange::EvidenceAttached {
                    check: check.clone(),
                    hash: h.clone(),
                });
            }
        }
    }
    for (check, hashes) in &before.evidence {
        for h in hashes {
            if !after.evidence.get(check).is_some_and(|s| s.contains(h)) {
                out.push(DomainChange::EvidenceDetached {
                    check: check.clone(),
                    hash: h.clone(),
                });
            }
        }
    }
    if before.narrative != after.narrative {
        out.push(DomainChange::NarrativeEdited {
            before_chars: before.narrative.chars().count(),
            after_chars: after.narrative.chars().count(),
        });
    }
    for a in &after.approvals {
        if !before.approvals.iter().any(|b| b.id == a.id) {
            out.push(DomainChange::Approved {
                approval: a.clone(),
            });
        }
    }
    out
}

/// One change of the visit's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Hex change hash.
    pub hash: String,
    pub actor: String,
    pub seq: u64,
    /// Device and user named in the change's author field.
    pub author: Option<Editor>,
    /// The device's clock when the change was made (whole seconds).
    pub device_time: DateTime<Utc>,
    pub deps: Vec<String>,
    pub changes: Vec<DomainChange>,
    /// Made after the latest approval and not part of what was approved.
    pub after_approval: bool,
}

impl Visit {
    /// Every change in causal order, described in domain terms.
    ///
    /// Cost: two state reads per change (one when history is linear), so it
    /// is meant for replay screens and audits, not for every tap.
    pub fn history(&self) -> Result<Vec<HistoryEntry>> {
        let doc = self.automerge();
        let metas: Vec<_> = doc
            .get_changes_meta(&[])
            .into_iter()
            .map(|m| m.into_owned())
            .collect();
        let current = self.state()?;
        let not_approved: Option<HashSet<ChangeHash>> = match current.latest_approval() {
            None => None,
            Some(a) => {
                let heads = a.head_hashes()?;
                Some(
                    doc.get_changes_meta(&heads)
                        .into_iter()
                        .map(|m| m.hash)
                        .collect(),
                )
            }
        };
        let mut after_cache: HashMap<ChangeHash, VisitState> = HashMap::new();
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let before = match m.deps.as_slice() {
                [] => None,
                [one] if after_cache.contains_key(one) => after_cache.get(one).cloned(),
                deps => self.state_at(deps).ok(),
            };
            let after = self.state_at(&[m.hash])?;
            let changes = diff_states(before.as_ref(), &after);
            let is_approval = changes
                .iter()
                .any(|c| matches!(c, DomainChange::Approved { .. }));
            let after_approval = !is_approval
                && not_approved
                    .as_ref()
                    .is_some_and(|set| set.contains(&m.hash));
            out.push(HistoryEntry {
                hash: m.hash.to_string(),
                actor: m.actor.to_hex_string(),
                seq: m.seq,
                author: m
                    .author
                    .as_ref()
                    .and_then(|a| Editor::from_author_bytes(a.as_bytes())),
                device_time: DateTime::from_timestamp(m.timestamp, 0).unwrap_or_default(),
                deps: m.deps.iter().map(|d| d.to_string()).collect(),
                changes,
                after_approval,
            });
            after_cache.clear();
            after_cache.insert(m.hash, after);
        }
        Ok(out)
    }

    /// The domain-level difference between two points in history.
    pub fn diff(&self, from: &[ChangeHash], to: &[ChangeHash]) -> Result<Vec<DomainChange>> {
        let before = if from.is_empty() {
            None
        } else {
            Some(self.state_at(from)?)
        };
        let after = self.state_at(to)?;
        Ok(diff_states(before.as_ref(), &after))
    }

    /// The heads of the document as it was at a device time: every change
    /// made at or before `at` (with its dependencies).
    pub fn heads_at_time(&self, at: DateTime<Utc>) -> Vec<ChangeHash> {
        let doc = self.automerge();
        let included: Vec<_> = doc
            .get_changes_meta(&[])
            .into_iter()
            .filter(|m| m.timestamp <= at.timestamp())
            .map(|m| (m.hash, m.deps.clone()))
            .collect();
        let deps: HashSet<ChangeHash> = included
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .collect();
        let mut heads: Vec<ChangeHash> = included
            .into_iter()
            .map(|(h, _)| h)
            .filter(|h| !deps.contains(h))
            .collect();
        heads.sort();
        heads
    }

    /// Whether the document holds a change.
    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.automerge().get_change_by_hash(hash).is_some()
    }
}
