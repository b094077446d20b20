//! Campaign seed files (`fixtures/campaigns/*.json`): units, rosters and,
//! for demonstrations and tests, the attendance each staff member was found in.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{CampaignId, StaffId, TeamId, UnitCode, VisitId};
use crate::model::{AttendanceMark, StaffCategory, StaffMember, Unit, UnitKind};
use crate::template::Label;
use crate::visit::{NewVisit, Visit};

/// The campaign file format this build reads.
pub const CAMPAIGN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignFixture {
    pub format: u32,
    pub campaign: CampaignInfo,
    /// File name of the template, beside the campaign in `fixtures/templates/`.
    pub template: String,
    pub units: Vec<UnitFixture>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignInfo {
    pub id: CampaignId,
    pub name: Label,
    pub authority: Label,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitFixture {
    pub code: UnitCode,
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub area: String,
    pub visit_date: NaiveDate,
    /// `national_day` or `regular`.
    pub round: String,
    pub team: TeamId,
    pub staff: Vec<StaffFixture>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaffFixture {
    pub id: StaffId,
    pub name: String,
    #[serde(default)]
    pub position: String,
    pub category: String,
    pub on_payroll: bool,
    pub attendance: AttendanceFixture,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttendanceFixture {
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl CampaignFixture {
    pub fn from_json(json: &str) -> Result<Self> {
        let f: CampaignFixture = serde_json::from_str(json)
            .map_err(|e| Error::TemplateJson(format!("campaign file: {e}")))?;
        if f.format != CAMPAIGN_FORMAT {
            return Err(Error::UnknownTemplateFormat {
                found: f.format,
                supported: CAMPAIGN_FORMAT,
            });
        }
        Ok(f)
    }
}

impl UnitFixture {
    pub fn visit_id(&self, campaign: &CampaignId) -> Result<VisitId> {
        VisitId::parse(&format!("{campaign}.{}", self.code))
    }

    pub fn new_visit(&self, campaign: &CampaignId) -> Result<NewVisit> {
        let roster = self
            .staff
            .iter()
            .map(|s| {
                StaffMember::new(
                    s.id.clone(),
                    &s.name,
                    &s.position,
                    StaffCategory::parse(&s.category)?,
                    s.on_payroll,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(NewVisit {
            visit_id: self.visit_id(campaign)?,
            unit: Unit::new(
                self.code.clone(),
                &self.name,
                UnitKind::parse(&self.kind)?,
                &self.area,
            )?,
            campaign: campaign.clone(),
            team: self.team.clone(),
            scheduled_on: self.visit_date,
            roster,
        })
    }

    /// The marks the fixture says each staff member was found in.
    pub fn outcomes(&self) -> Result<Vec<(StaffId, AttendanceMark, String)>> {
        self.staff
            .iter()
            .map(|s| {
                let mark =
                    AttendanceMark::parse(&s.attendance.status, s.attendance.reason.as_deref())?;
                Ok((
                    s.id.clone(),
                    mark,
                    s.attendance.note.clone().unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Records every outcome into `visit`, one change per staff member as a
    /// phone would.
    pub fn record_outcomes(&self, visit: &mut Visit) -> Result<()> {
        for (id, mark, note) in self.outcomes()? {
            visit.record_attendance(&id, mark, &note, None)?;
        }
        Ok(())
    }
}
