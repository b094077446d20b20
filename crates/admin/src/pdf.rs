//! The campaign report as a PDF in the layout of Vietnamese administrative
//! documents (Decree 30/2020/NĐ-CP on clerical work): A4 portrait; margins
//! top 20 mm, bottom 20 mm, left 30 mm, right 15 mm; at the top the issuing
//! body on the left with the number and symbol beneath, the national name
//! and motto on the right with the place and date beneath; the document
//! type and summary centred; the body; the signer's position and full name
//! on the right; the recipients on the left. The fonts are given as bytes
//! (a Times-New-Roman-metric serif with full Vietnamese, such as Liberation
//! Serif 2) and embedded.

use chrono::{Datelike, NaiveDate};
use printpdf::{
    Line, LinePoint, Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, TextItem,
};

use crate::report::CampaignReport;
use kiemtra_core::{Lang, format_count};

/// The four faces the layout uses, as font files' bytes.
pub struct Fonts {
    pub regular: Vec<u8>,
    pub bold: Vec<u8>,
    pub italic: Vec<u8>,
    pub bold_italic: Vec<u8>,
}

/// What the report's letterhead and closing say.
#[derive(Debug, Clone)]
pub struct Letterhead {
    /// The body above the issuer, e.g. `UBND THÀNH PHỐ CẦN THƠ`.
    pub parent_body: String,
    /// The issuing body, e.g. `SỞ NỘI VỤ`.
    pub body: String,
    /// Number and symbol, e.g. `125/BC-SNV`; empty leaves the number for the
    /// clerk to write in (`Số:      /BC`).
    pub number: String,
    pub place: String,
    pub date: NaiveDate,
    /// The summary under the document type.
    pub summary: String,
    /// e.g. `KT. GIÁM ĐỐC` / `PHÓ GIÁM ĐỐC`.
    pub signer_position: Vec<String>,
    pub signer_name: String,
    pub recipients: Vec<String>,
}

/// `Cần Thơ, ngày 05 tháng 9 năm 2015`: days 1–9 and the months January
/// and February take a leading zero. In English, `Can Tho, 5 September 2015`
/// with the place as given.
pub fn place_and_date(place: &str, date: NaiveDate, lang: Lang) -> String {
    match lang {
        Lang::Vi => {
            let month = if date.month() <= 2 {
                format!("{:02}", date.month())
            } else {
                date.month().to_string()
            };
            format!(
                "{place}, ngày {:02} tháng {month} năm {}",
                date.day(),
                date.year()
            )
        }
        Lang::En => format!("{place}, {}", date.format("%-d %B %Y")),
    }
}

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const LEFT: f32 = 30.0;
const RIGHT: f32 = 15.0;
const TOP: f32 = 20.0;
const BOTTOM: f32 = 20.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Face {
    Regular,
    Bold,
    Italic,
    BoldItalic,
}

#[derive(Clone, Copy)]
enum Align {
    Left(f32),
    Centre(f32, f32),
}

struct Layout {
    faces: Vec<(Face, ParsedFont, printpdf::FontId)>,
    pages: Vec<Vec<Op>>,
    /// Distance from the top of the page to the next baseline, mm.
    y: f32,
}

fn mm_to_pt(mm: f32) -> f32 {
    mm * 72.0 / 25.4
}

impl Layout {
    fn font(&self, face: Face) -> &(Face, ParsedFont, printpdf::FontId) {
        self.faces
            .iter()
            .find(|f| f.0 == face)
            .unwrap_or(&self.faces[0])
    }

    /// The width of `text` in mm at `size` points.
    fn width(&self, text: &str, face: Face, size: f32) -> f32 {
        let f = &self.font(face).1;
        let units: u32 = text
            .chars()
            .map(|c| {
                f.lookup_glyph_index(c as u32)
                    .and_then(|g| f.get_glyph_width(g))
                    .unwrap_or(0) as u32
            })
            .sum();
        let pt = units as f32 / f32::from(f.units_per_em.max(1)) * size;
        pt * 25.4 / 72.0
    }

    fn page(&mut self) -> &mut Vec<Op> {
        if self.pages.is_empty() {
            self.pages.push(Vec::new());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP + 5.0;
    }

    /// Draws one line of text with its baseline `y` mm from the top.
    fn text_at(&mut self, text: &str, face: Face, size: f32, x: f32, y: f32) {
        let id = self.font(face).2.clone();
        let ops = vec![
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(id),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point {
                    x: Pt(mm_to_pt(x)),
                    y: Pt(mm_to_pt(PAGE_H - y)),
                },
            },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_owned())],
            },
            Op::EndTextSection,
        ];
        self.page().extend(ops);
    }

    fn rule(&mut self, x0: f32, x1: f32, y: f32) {
        let point = |x: f32| LinePoint {
            p: Point {
                x: Pt(mm_to_pt(x)),
                y: Pt(mm_to_pt(PAGE_H - y)),
            },
            bezier: false,
        };
        let line = Line {
            points: vec![point(x0), point(x1)],
            is_closed: false,
        };
        self.page().extend([
            Op::SetOutlineThickness { pt: Pt(0.6) },
            Op::DrawLine { line },
        ]);
    }

    /// Centres `text` between `x0` and `x1` at `y`; returns its width.
    fn centred(&mut self, text: &str, face: Face, size: f32, x0: f32, x1: f32, y: f32) -> f32 {
        let w = self.width(text, face, size);
        self.text_at(text, face, size, x0 + ((x1 - x0) - w).max(0.0) / 2.0, y);
        w
    }

    /// Words of `text` broken into lines no wider than `width` mm.
    fn wrap(&self, text: &str, face: Face, size: f32, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && self.width(&candidate, face, size) > width {
                lines.push(std::mem::take(&mut line));
                line = word.to_owned();
            } else {
                line = candidate;
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    /// A paragraph flowed down the page, starting new pages as needed.
    fn paragraph(&mut self, text: &str, face: Face, size: f32, align: Align) {
        let leading = size * 25.4 / 72.0 * 1.35;
        let (x0, width) = match align {
            Align::Left(indent) => (LEFT + indent, PAGE_W - LEFT - RIGHT - indent),
            Align::Centre(a, b) => (a, b - a),
        };
        for line in self.wrap(text, face, size, width) {
            if self.y + leading > PAGE_H - BOTTOM {
                self.new_page();
            }
            self.y += leading;
            let y = self.y;
            match align {
                Align::Left(_) => self.text_at(&line, face, size, x0, y),
                Align::Centre(a, b) => {
                    self.centred(&line, face, size, a, b, y);
                }
            }
        }
    }

    fn gap(&mut self, mm: f32) {
        self.y += mm;
    }
}

/// The report as a PDF.
pub fn render(
    report: &CampaignReport,
    head: &Letterhead,
    fonts: &Fonts,
    lang: Lang,
) -> Result<Vec<u8>, String> {
    let l = |vi: &'static str, en: &'static str| if lang == Lang::Vi { vi } else { en };
    let n = |x: u32| format_count(x, lang);
    let mut doc = PdfDocument::new(&report.title);
    let mut faces = Vec::new();
    for (face, bytes) in [
        (Face::Regular, &fonts.regular),
        (Face::Bold, &fonts.bold),
        (Face::Italic, &fonts.italic),
        (Face::BoldItalic, &fonts.bold_italic),
    ] {
        let parsed = ParsedFont::from_bytes(bytes, 0, &mut Vec::new())
            .ok_or_else(|| "a font file does not parse".to_owned())?;
        let id = doc.add_font(&parsed);
        faces.push((face, parsed, id));
    }
    let mut p = Layout {
        faces,
        pages: Vec::new(),
        y: TOP,
    };

    // The letterhead: issuer on the left, the national name on the right.
    let (lx0, lx1) = (LEFT - 10.0, LEFT + 60.0);
    let (rx0, rx1) = (LEFT + 58.0, PAGE_W - RIGHT + 5.0);
    let top = TOP + 5.0;
    p.centred(&head.parent_body, Face::Regular, 12.0, lx0, lx1, top);
    let w = p.centred(&head.body, Face::Bold, 12.0, lx0, lx1, top + 5.5);
    let mid = (lx0 + lx1) / 2.0;
    p.rule(mid - w / 6.0, mid + w / 6.0, top + 7.0);
    let number = if head.number.is_empty() {
        format!("{}      /BC", l("Số:", "No.:"))
    } else {
        format!("{} {}", l("Số:", "No.:"), head.number)
    };
    p.centred(&number, Face::Regular, 13.0, lx0, lx1, top + 13.0);
    p.centred(
        l(
            "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
            "SOCIALIST REPUBLIC OF VIET NAM",
        ),
        Face::Bold,
        12.0,
        rx0,
        rx1,
        top,
    );
    let motto = l(
        "Độc lập - Tự do - Hạnh phúc",
        "Independence - Freedom - Happiness",
    );
    let w = p.centred(motto, Face::Bold, 13.0, rx0, rx1, top + 5.5);
    let mid = (rx0 + rx1) / 2.0;
    p.rule(mid - w / 2.0, mid + w / 2.0, top + 7.0);
    p.centred(
        &place_and_date(&head.place, head.date, lang),
        Face::Italic,
        13.0,
        rx0,
        rx1,
        top + 13.0,
    );

    // Document type and summary.
    p.y = top + 26.0;
    p.paragraph(
        l("BÁO CÁO", "REPORT"),
        Face::Bold,
        14.0,
        Align::Centre(LEFT, PAGE_W - RIGHT),
    );
    p.paragraph(
        &head.summary,
        Face::Bold,
        14.0,
        Align::Centre(LEFT + 10.0, PAGE_W - RIGHT - 10.0),
    );
    let y = p.y + 2.0;
    p.rule(PAGE_W / 2.0 + 7.5 - 20.0, PAGE_W / 2.0 + 7.5 + 20.0, y);
    p.gap(6.0);

    // The body.
    let size = 13.0;
    let body =
        |p: &mut Layout, text: &str| p.paragraph(text, Face::Regular, size, Align::Left(10.0));
    let heading = |p: &mut Layout, text: &str| {
        p.gap(2.0);
        p.paragraph(text, Face::Bold, size, Align::Left(10.0));
    };
    heading(
        &mut p,
        l("I. KẾT QUẢ KIỂM TRA", "I. FINDINGS OF THE INSPECTION"),
    );
    let kinds: Vec<String> = report
        .units_by_kind
        .iter()
        .map(|(k, c)| format!("{} {k}", n(*c)))
        .collect();
    body(
        &mut p,
        &format!(
            "1. {}: {}{}{}.",
            l(
                "Số đơn vị đã kiểm tra (biên bản đã phê duyệt)",
                "Units inspected (approved visits)"
            ),
            n(report.units_inspected),
            if kinds.is_empty() {
                ""
            } else {
                l(", gồm: ", ", of which: ")
            },
            kinds.join("; ")
        ),
    );
    let t = &report.tally;
    let reasons: Vec<String> = report
        .reasons
        .iter()
        .map(|(r, c, pct)| format!("{r} {} ({pct} {})", n(*c), l("số vắng", "of the absent")))
        .collect();
    body(
        &mut p,
        &format!(
            "2. {}: {}; {} {} ({}); {} {} ({}){}{}.",
            l("Tổng số CBCCVC trong biên chế", "Staff on payroll"),
            n(t.payroll),
            l("có mặt", "present"),
            n(t.present),
            report.present_pct,
            l("vắng mặt", "absent"),
            n(t.absent),
            report.absent_pct,
            if reasons.is_empty() {
                ""
            } else {
                l(", trong đó: ", ", of whom: ")
            },
            reasons.join("; ")
        ),
    );
    if !report.conduct_violations.is_empty() || !report.checks_failed.is_empty() {
        let mut items: Vec<String> = report
            .conduct_violations
            .iter()
            .map(|(w, c)| format!("{w}: {} {}", n(*c), l("người", "staff")))
            .collect();
        items.extend(
            report
                .checks_failed
                .iter()
                .map(|(w, c)| format!("{w}: {} {}", n(*c), l("đơn vị", "units"))),
        );
        body(
            &mut p,
            &format!(
                "3. {}: {}.",
                l("Vi phạm theo nội dung kiểm tra", "Violations by check"),
                items.join("; ")
            ),
        );
    }
    if !report.check_values.is_empty() {
        let items: Vec<String> = report
            .check_values
            .iter()
            .map(|(unit, check, value)| format!("{unit} — {check}: {value}"))
            .collect();
        body(
            &mut p,
            &format!(
                "{}: {}.",
                l("Số liệu ghi nhận", "Recorded values"),
                items.join("; ")
            ),
        );
    }
    if !report.findings.is_empty() {
        body(
            &mut p,
            &format!(
                "4. {}:",
                l(
                    "Tồn tại, hạn chế và kiến nghị xử lý",
                    "Findings and recommendations"
                )
            ),
        );
        for (unit, text, rec) in &report.findings {
            let line = if rec.is_empty() {
                format!("- {unit}: {text}")
            } else {
                format!(
                    "- {unit}: {text} {} {rec}",
                    l("Kiến nghị:", "Recommendation:")
                )
            };
            body(&mut p, &line);
        }
    }
    for (unit, absorbed) in &report.merged_units {
        body(
            &mut p,
            &format!(
                "- {unit} {} {}.",
                l("hình thành từ", "formed from"),
                absorbed.join(", ")
            ),
        );
    }
    if !report.unplanned.is_empty() {
        body(
            &mut p,
            &format!(
                "{}: {}.",
                l("Kiểm tra ngoài kế hoạch", "Inspected outside the plan"),
                report.unplanned.join("; ")
            ),
        );
    }
    for d in &report.draws {
        body(
            &mut p,
            &format!(
                "{} {} / {}: {} ({} {}).",
                l("Bốc thăm ngẫu nhiên", "Random draw"),
                d.count,
                d.candidates.len(),
                d.selection.join(", "),
                l("cam kết", "commitment"),
                d.commitment
            ),
        );
    }
    if !report.not_approved.is_empty() {
        body(
            &mut p,
            &format!(
                "{}: {}.",
                l(
                    "Biên bản chưa được phê duyệt (không tính vào số liệu)",
                    "Visits not yet approved (not counted)"
                ),
                report.not_approved.join("; ")
            ),
        );
    }
    heading(&mut p, l("II. XÁC THỰC SỐ LIỆU", "II. VERIFICATION"));
    body(
        &mut p,
        &format!(
            "{}: {}.",
            l(
                "Số liệu được tính từ các biên bản đã được phê duyệt và ký số bởi",
                "The figures count visits approved and signed by"
            ),
            if report.approvers.is_empty() {
                "—".to_owned()
            } else {
                report.approvers.join(", ")
            }
        ),
    );
    body(
        &mut p,
        &format!(
            "{}: {}",
            l("Mã xác minh (SHA-256)", "Verification reference (SHA-256)"),
            report.verification
        ),
    );

    // Signer on the right, recipients on the left, on one block.
    let needed = 45.0_f32.max(6.0 * (head.recipients.len() as f32 + 1.0));
    if p.y + needed > PAGE_H - BOTTOM {
        p.new_page();
    }
    let block = p.y + 10.0;
    let (sx0, sx1) = (PAGE_W / 2.0 + 10.0, PAGE_W - RIGHT);
    let mut y = block;
    for line in &head.signer_position {
        p.centred(line, Face::Bold, 13.0, sx0, sx1, y);
        y += 5.5;
    }
    p.centred(&head.signer_name, Face::Bold, 13.0, sx0, sx1, y + 25.0);
    p.text_at(
        l("Nơi nhận:", "Recipients:"),
        Face::BoldItalic,
        12.0,
        LEFT,
        block,
    );
    let mut y = block + 5.0;
    for r in &head.recipients {
        p.text_at(&format!("- {r};"), Face::Regular, 11.0, LEFT, y);
        y += 4.5;
    }

    let pages: Vec<PdfPage> = p
        .pages
        .into_iter()
        .map(|ops| PdfPage::new(Mm(PAGE_W), Mm(PAGE_H), ops))
        .collect();
    Ok(doc
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_line_takes_leading_zeros_as_the_decree_says() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(
            place_and_date("Cần Thơ", d(2015, 9, 5), Lang::Vi),
            "Cần Thơ, ngày 05 tháng 9 năm 2015"
        );
        assert_eq!(
            place_and_date("Cần Thơ", d(2017, 1, 19), Lang::Vi),
            "Cần Thơ, ngày 19 tháng 01 năm 2017"
        );
        assert_eq!(
            place_and_date("Cần Thơ", d(2015, 12, 31), Lang::Vi),
            "Cần Thơ, ngày 31 tháng 12 năm 2015"
        );
        assert_eq!(
            place_and_date("Can Tho", d(2015, 9, 5), Lang::En),
            "Can Tho, 5 September 2015"
        );
    }
}
