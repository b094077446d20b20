//! Attendance tallies, derived on read from the roster and the attendance
//! shown; never stored in the document.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::model::{AbsenceReason, AttendanceMark, Lang};
use crate::state::VisitState;

/// A percentage rounded half-up to two decimals, held as hundredths of a
/// percent (7628 = 76.28%) so that it prints the same everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Percent(pub u32);

impl Percent {
    /// `part / whole` as a percentage; 0 when `whole` is 0.
    pub fn of(part: u32, whole: u32) -> Self {
        if whole == 0 {
            return Percent(0);
        }
        let (p, w) = (u64::from(part), u64::from(whole));
        // round(p * 10000 / w), half up, in integers.
        Percent(((p * 20_000 + w) / (2 * w)) as u32)
    }
    /// `76.28` or `76,28` (Vietnamese decimal comma), without the sign.
    pub fn format(self, lang: Lang) -> String {
        let sep = match lang {
            Lang::Vi => ',',
            Lang::En => '.',
        };
        format!("{}{}{:02}", self.0 / 100, sep, self.0 % 100)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.format(Lang::En))
    }
}

/// A count with the thousands separator of the language: `1.404` or `1,404`.
pub fn format_count(n: u32, lang: Lang) -> String {
    format_digits(u64::from(n), lang)
}

/// A whole number with thousands separators, signed (`-1.404`, `12,000`).
pub fn format_int(n: i64, lang: Lang) -> String {
    let digits = format_digits(n.unsigned_abs(), lang);
    if n < 0 { format!("-{digits}") } else { digits }
}

fn format_digits(n: u64, lang: Lang) -> String {
    let sep = match lang {
        Lang::Vi => '.',
        Lang::En => ',',
    };
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// Attendance figures for the staff on payroll.
///
/// `present` counts everyone at work, on time or late (the article's "có
/// mặt"); `late` is the part of them who came late. `absent_by_reason`
/// breaks `absent` down; its percentages are of `absent`, as in the reports.
/// Staff not yet recorded are `unrecorded` and in no other figure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub payroll: u32,
    pub present: u32,
    pub late: u32,
    pub absent: u32,
    pub unrecorded: u32,
    pub absent_by_reason: BTreeMap<AbsenceReason, u32>,
}

impl Tally {
    pub(crate) fn from_state(state: &VisitState) -> Self {
        let mut t = Tally::default();
        for (id, member) in &state.staff {
            if !member.value.on_payroll {
                continue;
            }
            t.payroll += 1;
            match state.attendance.get(id).map(|slot| slot.value().mark) {
                None => t.unrecorded += 1,
                Some(AttendanceMark::Present) => t.present += 1,
                Some(AttendanceMark::Late) => {
                    t.present += 1;
                    t.late += 1;
                }
                Some(AttendanceMark::Absent(reason)) => {
                    t.absent += 1;
                    *t.absent_by_reason.entry(reason).or_default() += 1;
                }
            }
        }
        t
    }

    /// Adds another tally (for campaign totals).
    pub fn add(&mut self, other: &Tally) {
        self.payroll += other.payroll;
        self.present += other.present;
        self.late += other.late;
        self.absent += other.absent;
        self.unrecorded += other.unrecorded;
        for (r, n) in &other.absent_by_reason {
            *self.absent_by_reason.entry(*r).or_default() += n;
        }
    }

    pub fn present_pct(&self) -> Percent {
        Percent::of(self.present, self.payroll)
    }
    pub fn late_pct(&self) -> Percent {
        Percent::of(self.late, self.payroll)
    }
    pub fn absent_pct(&self) -> Percent {
        Percent::of(self.absent, self.payroll)
    }
    pub fn unrecorded_pct(&self) -> Percent {
        Percent::of(self.unrecorded, self.payroll)
    }
    pub fn reason_count(&self, reason: AbsenceReason) -> u32 {
        self.absent_by_reason.get(&reason).copied().unwrap_or(0)
    }
    /// Share of the absent who were absent for `reason`.
    pub fn reason_pct(&self, reason: AbsenceReason) -> Percent {
        Percent::of(self.reason_count(reason), self.absent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_half_up_to_two_decimals() {
        assert_eq!(Percent::of(1071, 1404).format(Lang::En), "76.28");
        assert_eq!(Percent::of(333, 1404).format(Lang::Vi), "23,72");
        assert_eq!(Percent::of(146, 333).format(Lang::Vi), "43,84");
        assert_eq!(Percent::of(93, 333).format(Lang::Vi), "27,93");
        assert_eq!(Percent::of(1, 8).format(Lang::En), "12.50");
        assert_eq!(Percent::of(1, 3).format(Lang::En), "33.33");
        assert_eq!(Percent::of(2, 3).format(Lang::En), "66.67");
        assert_eq!(Percent::of(0, 0).format(Lang::En), "0.00");
        assert_eq!(Percent::of(5, 5).to_string(), "100.00%");
        assert_eq!(format_count(1404, Lang::Vi), "1.404");
        assert_eq!(format_count(1404, Lang::En), "1,404");
        assert_eq!(format_count(12_000_000, Lang::Vi), "12.000.000");
        assert_eq!(format_count(333, Lang::Vi), "333");
    }
}
