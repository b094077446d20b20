//! Imports of areas, units and rosters from CSV or Excel (.xlsx) files,
//! all or nothing: every bad row is reported with its sheet, line and
//! reason, and nothing is imported while any row is bad.
//!
//! The columns, named in the first row (any order; more columns are
//! ignored):
//! - areas: `area_code, area_name, tier, parent, valid_from, valid_to`
//! - units: `unit_code, unit_name, unit_kind, area, valid_from, valid_to`
//! - staff (rosters): `unit_code, staff_id, staff_name, position, category,
//!   on_payroll`, one row per person, the units' rows in roster order.
//!
//! A workbook may hold sheets named `areas`, `units` and `staff` (or
//! `Khu vực`, `Đơn vị`, `Nhân sự`); a CSV file is one sheet of the kind
//! asked for. Dates are `31/08/2015` or `2015-08-31`.

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;
use kiemtra_core::{StaffCategory, StaffId, StaffMember, UnitCode, UnitKind, text};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use crate::directory::{Area, Directory, Tier, UnitRecord};
use crate::log::Act;

/// Largest file taken.
pub const MAX_FILE: usize = 8 * 1024 * 1024;
/// Most bytes a workbook may unpack to.
pub const MAX_UNPACKED: u64 = 64 * 1024 * 1024;
/// Most rows in one sheet.
pub const MAX_ROWS: usize = 100_000;
/// Most bad rows reported (the rest are counted).
pub const MAX_REPORTED: usize = 200;

/// One refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub sheet: String,
    /// 1-based line (row) of the file; 0 for the file or sheet as a whole.
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.sheet, self.reason)
        } else {
            write!(f, "{}, line {}: {}", self.sheet, self.line, self.reason)
        }
    }
}

/// What is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Areas,
    Units,
    Staff,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "areas" => Some(Kind::Areas),
            "units" => Some(Kind::Units),
            "staff" | "roster" | "rosters" => Some(Kind::Staff),
            _ => None,
        }
    }
    fn sheet_names(self) -> &'static [&'static str] {
        match self {
            Kind::Areas => &["areas", "khu vực", "khu vuc"],
            Kind::Units => &["units", "đơn vị", "don vi"],
            Kind::Staff => &["staff", "nhân sự", "nhan su", "roster"],
        }
    }
}

/// A sheet as text: its name, its header and its rows with their lines.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub name: String,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

fn file_error(sheet: &str, reason: impl Into<String>) -> Vec<RowError> {
    vec![RowError {
        sheet: sheet.into(),
        line: 0,
        reason: reason.into(),
    }]
}

/// Whether the bytes are an .xlsx (a zip) rather than CSV text.
pub fn is_xlsx(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Reads the sheets of kind `kind` from a CSV or .xlsx file.
pub fn read(bytes: &[u8], kind: Kind) -> Result<Vec<Sheet>, Vec<RowError>> {
    if bytes.len() > MAX_FILE {
        return Err(file_error(
            "file",
            format!("the file is larger than {} MiB", MAX_FILE / 1024 / 1024),
        ));
    }
    if is_xlsx(bytes) {
        read_xlsx(bytes, kind)
    } else {
        Ok(vec![read_csv(bytes, kind.sheet_names()[0])?])
    }
}

fn read_csv(bytes: &[u8], name: &str) -> Result<Sheet, Vec<RowError>> {
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|_| file_error(name, "the file is not UTF-8 text; save the CSV as UTF-8"))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut header = None;
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 1;
        let rec = rec.map_err(|e| {
            vec![RowError {
                sheet: name.into(),
                line,
                reason: format!("not CSV: {e}"),
            }]
        })?;
        let cells: Vec<String> = rec.iter().map(|c| c.to_owned()).collect();
        if header.is_none() {
            header = Some(cells);
            continue;
        }
        if cells.iter().all(|c| c.is_empty()) {
            continue;
        }
        if rows.len() >= MAX_ROWS {
            return Err(file_error(name, format!("more than {MAX_ROWS} rows")));
        }
        rows.push((line, cells));
    }
    Ok(Sheet {
        name: name.into(),
        header: header.ok_or_else(|| file_error(name, "the file is empty"))?,
        rows,
    })
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => dt
            .as_datetime()
            .map(|t| t.date().format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// Refuses a workbook whose parts would unpack to more than
/// [`MAX_UNPACKED`] bytes, before anything is unpacked.
fn unpacked_size(bytes: &[u8]) -> Result<u64, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not an .xlsx workbook: {e}"))?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| format!("not an .xlsx workbook: {e}"))?;
        total = total.saturating_add(f.size());
    }
    Ok(total)
}

fn read_xlsx(bytes: &[u8], kind: Kind) -> Result<Vec<Sheet>, Vec<RowError>> {
    let size = unpacked_size(bytes).map_err(|e| file_error("workbook", e))?;
    if size > MAX_UNPACKED {
        return Err(file_error(
            "workbook",
            format!(
                "the workbook unpacks to more than {} MiB",
                MAX_UNPACKED / 1024 / 1024
            ),
        ));
    }
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| file_error("workbook", format!("not an .xlsx workbook: {e}")))?;
    let names = wb.sheet_names().to_owned();
    let wanted: Vec<String> = names
        .iter()
        .filter(|n| {
            let n = n.trim().to_lowercase();
            kind.sheet_names().contains(&n.as_str())
        })
        .cloned()
        .collect();
    // A workbook of one sheet is that sheet, whatever its name.
    let wanted = if wanted.is_empty() && names.len() == 1 {
        names.clone()
    } else {
        wanted
    };
    if wanted.is_empty() {
        return Err(file_error(
            "workbook",
            format!(
                "no sheet named {:?} (sheets: {})",
                kind.sheet_names()[0],
                names.join(", ")
            ),
        ));
    }
    let mut sheets = Vec::new();
    for name in wanted {
        let range = wb
            .worksheet_range(&name)
            .map_err(|e| file_error(&name, format!("cannot read the sheet: {e}")))?;
        let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
        let first_col = range.start().map(|(_, c)| c as usize).unwrap_or(0);
        let mut header = None;
        let mut rows = Vec::new();
        for (i, row) in range.rows().enumerate() {
            let line = first_row + i + 1;
            let mut cells: Vec<String> = vec![String::new(); first_col];
            cells.extend(row.iter().map(cell_text));
            if header.is_none() {
                if cells.iter().all(|c| c.is_empty()) {
                    continue;
                }
                header = Some(cells);
                continue;
            }
            if cells.iter().all(|c| c.is_empty()) {
                continue;
            }
            if rows.len() >= MAX_ROWS {
                return Err(file_error(&name, format!("more than {MAX_ROWS} rows")));
            }
            rows.push((line, cells));
        }
        sheets.push(Sheet {
            header: header.ok_or_else(|| file_error(&name, "the sheet is empty"))?,
            name,
            rows,
        });
    }
    Ok(sheets)
}

struct Columns {
    index: BTreeMap<&'static str, usize>,
}

impl Columns {
    fn new(
        sheet: &Sheet,
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Result<Self, Vec<RowError>> {
        let mut index = BTreeMap::new();
        let names: Vec<String> = sheet
            .header
            .iter()
            .map(|h| h.trim().to_lowercase())
            .collect();
        for &col in required.iter().chain(optional) {
            if let Some(i) = names.iter().position(|h| h == col) {
                index.insert(col, i);
            }
        }
        let missing: Vec<&str> = required
            .iter()
            .filter(|c| !index.contains_key(*c))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(vec![RowError {
                sheet: sheet.name.clone(),
                line: 1,
                reason: format!("missing column(s): {}", missing.join(", ")),
            }]);
        }
        Ok(Columns { index })
    }
    fn get<'r>(&self, row: &'r [String], col: &str) -> &'r str {
        self.index
            .get(col)
            .and_then(|&i| row.get(i))
            .map(|s| s.as_str())
            .unwrap_or("")
    }
}

/// A date as offices write it: `31/08/2015`, or `2015-08-31`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%d/%m/%Y")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
        .map_err(|_| format!("{s:?} is not a date (31/08/2015 or 2015-08-31)"))
}

fn optional_date(s: &str) -> Result<Option<NaiveDate>, String> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        parse_date(s).map(Some)
    }
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "yes" | "true" | "1" | "có" | "x" => Ok(true),
        "no" | "false" | "0" | "không" | "" => Ok(false),
        other => Err(format!("on_payroll {other:?} is not yes/no/có/không/1/0")),
    }
}

fn nfc_name(field: &'static str, s: &str) -> Result<String, String> {
    text::required(field, s, text::MAX_NAME).map_err(|e| e.to_string())
}

struct Errors(Vec<RowError>, usize);

impl Errors {
    fn push(&mut self, sheet: &str, line: usize, reason: impl Into<String>) {
        self.1 += 1;
        if self.0.len() < MAX_REPORTED {
            self.0.push(RowError {
                sheet: sheet.into(),
                line,
                reason: reason.into(),
            });
        }
    }
    fn finish<T>(mut self, value: T) -> Result<T, Vec<RowError>> {
        if self.1 == 0 {
            return Ok(value);
        }
        if self.1 > self.0.len() {
            let more = self.1 - self.0.len();
            self.0.push(RowError {
                sheet: "file".into(),
                line: 0,
                reason: format!("and {more} more bad rows"),
            });
        }
        Err(self.0)
    }
}

/// The acts an import makes, checked against the directory as it stands;
/// or every bad row. `valid_from` dates rosters (and units or areas whose
/// rows give no date).
pub fn prepare(
    directory: &Directory,
    kind: Kind,
    sheets: &[Sheet],
    valid_from: NaiveDate,
) -> Result<Vec<Act>, Vec<RowError>> {
    match kind {
        Kind::Areas => prepare_areas(directory, sheets, valid_from),
        Kind::Units => prepare_units(directory, sheets, valid_from),
        Kind::Staff => prepare_staff(directory, sheets, valid_from),
    }
}

fn prepare_areas(
    directory: &Directory,
    sheets: &[Sheet],
    valid_from: NaiveDate,
) -> Result<Vec<Act>, Vec<RowError>> {
    let mut errors = Errors(Vec::new(), 0);
    let mut areas: Vec<Area> = Vec::new();
    let mut tiers: BTreeMap<UnitCode, Tier> = directory
        .areas
        .iter()
        .map(|(c, a)| (c.clone(), a.tier))
        .collect();
    let mut seen = BTreeSet::new();
    for sheet in sheets {
        let cols = Columns::new(
            sheet,
            &["area_code", "area_name", "tier"],
            &["parent", "valid_from", "valid_to"],
        )?;
        for (line, row) in &sheet.rows {
            let mut one = || -> Result<Area, String> {
                let code =
                    UnitCode::parse(cols.get(row, "area_code")).map_err(|e| e.to_string())?;
                if !seen.insert(code.clone()) {
                    return Err(format!("area {code} appears twice"));
                }
                let tier = Tier::parse(cols.get(row, "tier")).ok_or_else(|| {
                    format!(
                        "tier {:?} is not province, district or commune",
                        cols.get(row, "tier")
                    )
                })?;
                let parent = match cols.get(row, "parent").trim() {
                    "" => None,
                    p => Some(UnitCode::parse(p).map_err(|e| e.to_string())?),
                };
                match (&parent, tier) {
                    (None, Tier::Province) => {}
                    (None, t) => return Err(format!("a {} needs a parent area", t.as_str())),
                    (Some(_), Tier::Province) => return Err("a province has no parent".into()),
                    (Some(p), t) => match tiers.get(p) {
                        None => return Err(format!("no parent area {p}")),
                        Some(pt) if *pt >= t => {
                            return Err(format!(
                                "a {} cannot lie within a {} ({p})",
                                t.as_str(),
                                pt.as_str()
                            ));
                        }
                        Some(_) => {}
                    },
                }
                let from = optional_date(cols.get(row, "valid_from"))?.unwrap_or(valid_from);
                let to = optional_date(cols.get(row, "valid_to"))?;
                if to.is_some_and(|t| t < from) {
                    return Err("valid_to is before valid_from".into());
                }
                tiers.insert(code.clone(), tier);
                Ok(Area {
                    code,
                    name: nfc_name("area name", cols.get(row, "area_name"))?,
                    tier,
                    parent,
                    valid_from: from,
                    valid_to: to,
                })
            };
            match one() {
                Ok(a) => areas.push(a),
                Err(reason) => errors.push(&sheet.name, *line, reason),
            }
        }
    }
    if areas.is_empty() && errors.1 == 0 {
        errors.push("file", 0, "no rows after the header");
    }
    errors.finish(vec![Act::AreasImported { areas }])
}

fn prepare_units(
    directory: &Directory,
    sheets: &[Sheet],
    valid_from: NaiveDate,
) -> Result<Vec<Act>, Vec<RowError>> {
    let mut errors = Errors(Vec::new(), 0);
    let mut units = Vec::new();
    let mut seen = BTreeSet::new();
    for sheet in sheets {
        let cols = Columns::new(
            sheet,
            &["unit_code", "unit_name", "unit_kind", "area"],
            &["valid_from", "valid_to"],
        )?;
        for (line, row) in &sheet.rows {
            let mut one = || -> Result<UnitRecord, String> {
                let code =
                    UnitCode::parse(cols.get(row, "unit_code")).map_err(|e| e.to_string())?;
                if !seen.insert(code.clone()) {
                    return Err(format!("unit {code} appears twice"));
                }
                let kind =
                    UnitKind::parse(cols.get(row, "unit_kind")).map_err(|e| e.to_string())?;
                let area = UnitCode::parse(cols.get(row, "area")).map_err(|e| e.to_string())?;
                if !directory.areas.contains_key(&area) {
                    return Err(format!("no area {area}; import the areas first"));
                }
                let from = optional_date(cols.get(row, "valid_from"))?.unwrap_or(valid_from);
                let to = optional_date(cols.get(row, "valid_to"))?;
                if to.is_some_and(|t| t < from) {
                    return Err("valid_to is before valid_from".into());
                }
                Ok(UnitRecord {
                    code,
                    name: nfc_name("unit name", cols.get(row, "unit_name"))?,
                    kind,
                    area,
                    valid_from: from,
                    valid_to: to,
                })
            };
            match one() {
                Ok(u) => units.push(u),
                Err(reason) => errors.push(&sheet.name, *line, reason),
            }
        }
    }
    if units.is_empty() && errors.1 == 0 {
        errors.push("file", 0, "no rows after the header");
    }
    errors.finish(vec![Act::UnitsImported { units }])
}

fn prepare_staff(
    directory: &Directory,
    sheets: &[Sheet],
    valid_from: NaiveDate,
) -> Result<Vec<Act>, Vec<RowError>> {
    let mut errors = Errors(Vec::new(), 0);
    let mut rosters: Vec<(UnitCode, Vec<StaffMember>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for sheet in sheets {
        let cols = Columns::new(
            sheet,
            &["unit_code", "staff_id", "staff_name", "category"],
            &["position", "on_payroll"],
        )?;
        for (line, row) in &sheet.rows {
            let mut one = || -> Result<(UnitCode, StaffMember), String> {
                let unit =
                    UnitCode::parse(cols.get(row, "unit_code")).map_err(|e| e.to_string())?;
                if !directory.units.contains_key(&unit) {
                    return Err(format!("no unit {unit}; import the units first"));
                }
                let id = StaffId::parse(cols.get(row, "staff_id")).map_err(|e| e.to_string())?;
                if !seen.insert((unit.clone(), id.clone())) {
                    return Err(format!("staff {id} appears twice in unit {unit}"));
                }
                let category =
                    StaffCategory::parse(cols.get(row, "category")).map_err(|e| e.to_string())?;
                let on_payroll = if cols.index.contains_key("on_payroll") {
                    yes_no(cols.get(row, "on_payroll"))?
                } else {
                    true
                };
                let member = StaffMember::new(
                    id,
                    cols.get(row, "staff_name"),
                    cols.get(row, "position"),
                    category,
                    on_payroll,
                )
                .map_err(|e| e.to_string())?;
                Ok((unit, member))
            };
            match one() {
                Ok((unit, m)) => match rosters.iter_mut().find(|(u, _)| u == &unit) {
                    Some((_, staff)) => {
                        if staff.len() >= kiemtra_core::MAX_STAFF {
                            errors.push(
                                &sheet.name,
                                *line,
                                format!(
                                    "unit {unit} has more than {} people",
                                    kiemtra_core::MAX_STAFF
                                ),
                            );
                        } else {
                            staff.push(m);
                        }
                    }
                    None => rosters.push((unit, vec![m])),
                },
                Err(reason) => errors.push(&sheet.name, *line, reason),
            }
        }
    }
    if rosters.is_empty() && errors.1 == 0 {
        errors.push("file", 0, "no rows after the header");
    }
    errors.finish(
        rosters
            .into_iter()
            .map(|(unit, staff)| Act::RosterPublished {
                unit,
                valid_from,
                staff,
            })
            .collect(),
    )
}
