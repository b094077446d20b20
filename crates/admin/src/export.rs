//! Lists and reports as tables, written as CSV, JSON or Excel (.xlsx).

use rust_xlsxwriter::{Format, Workbook};
use serde::Serialize;

/// The formats a list is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Json,
    Xlsx,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
            Self::Xlsx => "xlsx",
        }
    }
}

/// One cell: text or a whole number (kept a number in a workbook).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    Text(String),
    Number(i64),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}
impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}
impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Number(n)
    }
}
impl From<usize> for Cell {
    fn from(n: usize) -> Self {
        Cell::Number(n as i64)
    }
}

/// A list: a sheet name, column names and rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(name: &str, columns: &[&str]) -> Self {
        Table {
            name: name.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table in `format`.
    pub fn write(&self, format: ExportFormat) -> Result<Vec<u8>, String> {
        match format {
            ExportFormat::Csv => self.csv(),
            ExportFormat::Json => Ok(self.json()),
            ExportFormat::Xlsx => self.xlsx(),
        }
    }

    fn csv(&self) -> Result<Vec<u8>, String> {
        // A byte-order mark, so that Excel opens the UTF-8 as UTF-8.
        let mut out = b"\xEF\xBB\xBF".to_vec();
        {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(&self.columns).map_err(|e| e.to_string())?;
            for r in &self.rows {
                w.write_record(r.iter().map(|c| match c {
                    Cell::Text(s) => s.clone(),
                    Cell::Number(n) => n.to_string(),
                }))
                .map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// An array of objects, one per row, keyed by column.
    fn json(&self) -> Vec<u8> {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = self
            .rows
            .iter()
            .map(|r| {
                self.columns
                    .iter()
                    .zip(r)
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            match v {
                                Cell::Text(s) => serde_json::Value::String(s.clone()),
                                Cell::Number(n) => serde_json::Value::from(*n),
                            },
                        )
                    })
                    .collect()
            })
            .collect();
        serde_json::to_vec_pretty(&rows).unwrap_or_default()
    }

    fn xlsx(&self) -> Result<Vec<u8>, String> {
        write_workbook(std::slice::from_ref(self))
    }
}

/// Several tables as the sheets of one workbook.
pub fn write_workbook(tables: &[Table]) -> Result<Vec<u8>, String> {
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    for t in tables {
        let ws = wb.add_worksheet();
        // Sheet names: at most 31 characters, none of []:*?/\ .
        let name: String = t
            .name
            .chars()
            .filter(|c| !"[]:*?/\\".contains(*c))
            .take(31)
            .collect();
        ws.set_name(&name).map_err(|e| e.to_string())?;
        for (c, col) in t.columns.iter().enumerate() {
            ws.write_string_with_format(0, c as u16, col, &bold)
                .map_err(|e| e.to_string())?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32 + 1, c as u16);
                match cell {
                    Cell::Text(s) => ws.write_string(r, c, s).map(|_| ()),
                    Cell::Number(n) => ws.write_number(r, c, *n as f64).map(|_| ()),
                }
                .map_err(|e| e.to_string())?;
            }
        }
    }
    wb.save_to_buffer().map_err(|e| e.to_string())
}
