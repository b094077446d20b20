//! `kiemtra admin …` over HTTP: an administrator's enrolled desk reads the
//! administration log, signs acts with its own key and sends them; an
//! auditor's desk reads and verifies the log. The desk replays the whole
//! log itself with the same rules as the server and remembers the head it
//! last verified, so a server that rewrote or cut the log since is caught.

use kiemtra_admin::log::timestamp;
use kiemtra_admin::{Act, Author, Directory, Entry, Head};
use kiemtra_core::{Role, TeamId, UserId};
use serde_json::{Value, json};

use crate::desk::{CliError, Desk, Result, runtime};

/// The desk setting holding the last head this desk verified.
const SEEN_HEAD: &str = "admin.seen_head";

fn net(e: impl std::fmt::Display) -> CliError {
    CliError::Network(e.to_string())
}

async fn answer(r: reqwest::Response) -> Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let mut detail = body["detail"].as_str().unwrap_or("").to_owned();
    if let Some(errors) = body["errors"].as_array() {
        detail = errors
            .iter()
            .map(|e| {
                format!(
                    "{}, line {}: {}",
                    e["sheet"].as_str().unwrap_or(""),
                    e["line"],
                    e["reason"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    Err(match status.as_u16() {
        400 | 404 | 409 | 422 => CliError::Invalid(detail),
        401 | 403 => CliError::NotAllowed(detail),
        _ => CliError::Network(format!("{status}: {detail}")),
    })
}

/// The desk's view of the server's administration.
pub struct AdminClient<'a> {
    desk: &'a mut Desk,
    http: reqwest::Client,
}

impl<'a> AdminClient<'a> {
    pub fn new(desk: &'a mut Desk) -> Self {
        AdminClient {
            desk,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.desk.creds.server.trim_end_matches('/'))
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.desk.creds.token)
            .send()
            .await
            .map_err(net)
    }

    /// The whole log, replayed and checked here.
    pub async fn log(&self) -> Result<(Vec<Entry>, Directory)> {
        let v = answer(self.get("/v1/admin/log").await?).await?;
        let entries: Vec<Entry> = serde_json::from_value(v["entries"].clone())
            .map_err(|e| CliError::Problems(format!("the server's log does not read: {e}")))?;
        let d = Directory::replay(&entries).map_err(|(seq, r)| {
            CliError::Problems(format!(
                "the administration log does not verify at entry {seq}: {r}"
            ))
        })?;
        Ok((entries, d))
    }

    /// Signs `acts` after the log's head and sends them, all or none.
    pub async fn act(&mut self, acts: Vec<Act>) -> Result<Head> {
        let (_, d) = self.log().await?;
        let mut head = d.head.clone();
        let mut entries = Vec::new();
        for act in acts {
            let at = timestamp(chrono::Utc::now()).max(head.at.clone());
            let mut e = Entry::next(
                &head,
                &at,
                Author::Device {
                    device_id: self.desk.creds.device_id.clone(),
                },
                act,
            );
            let sig = self
                .desk
                .creds
                .sign_bytes(&e.signing_bytes())
                .map_err(|e| CliError::Other(e.to_string()))?;
            e.signature = kiemtra_core::hex::encode(&sig);
            head = e.head();
            entries.push(e);
        }
        let r = self
            .http
            .post(self.url("/v1/admin/log"))
            .bearer_auth(&self.desk.creds.token)
            .json(&json!({ "entries": entries }))
            .send()
            .await
            .map_err(net)?;
        let v = answer(r).await?;
        serde_json::from_value(v).map_err(|e| CliError::Other(e.to_string()))
    }

    /// Sends a file for the server to check row by row; the acts it makes.
    pub async fn prepare_import(
        &self,
        kind: &str,
        bytes: Vec<u8>,
        valid_from: &str,
    ) -> Result<Vec<Act>> {
        let r = self
            .http
            .post(self.url(&format!(
                "/v1/admin/imports/{kind}?valid_from={}",
                valid_from
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-'))
                    .collect::<String>()
            )))
            .bearer_auth(&self.desk.creds.token)
            .body(bytes)
            .send()
            .await
            .map_err(net)?;
        let v = answer(r).await?;
        serde_json::from_value(v["acts"].clone()).map_err(|e| CliError::Other(e.to_string()))
    }

    pub async fn export(&self, list: &str, format: &str) -> Result<Vec<u8>> {
        let r = self
            .get(&format!("/v1/admin/export/{list}?format={format}"))
            .await?;
        if !r.status().is_success() {
            return answer(r).await.map(|_| Vec::new());
        }
        Ok(r.bytes().await.map_err(net)?.to_vec())
    }

    /// The server's report of a campaign, in `format` (md, csv, json,
    /// xlsx), over the visits this desk's user may see.
    pub async fn report(&self, campaign: &str, format: &str, lang: &str) -> Result<Vec<u8>> {
        let r = self
            .get(&format!(
                "/v1/campaigns/{campaign}/report?format={format}&lang={lang}"
            ))
            .await?;
        if !r.status().is_success() {
            return answer(r).await.map(|_| Vec::new());
        }
        Ok(r.bytes().await.map_err(net)?.to_vec())
    }

    /// Verifies the log, and that it extends the head this desk verified
    /// last; remembers the new head. Returns the head and the device check.
    pub async fn verify(&mut self) -> Result<(Head, Value)> {
        let (entries, d) = self.log().await?;
        if let Some(seen) = self.desk.store.setting(SEEN_HEAD)? {
            let seen: Head =
                serde_json::from_str(&seen).map_err(|e| CliError::Other(e.to_string()))?;
            let kept = entries
                .iter()
                .find(|e| e.seq == seen.seq)
                .is_some_and(|e| e.hash() == seen.hash);
            if seen.seq > 0 && !kept {
                return Err(CliError::Problems(format!(
                    "the log no longer holds entry {} as this desk verified it ({}): entries were \
                     removed or rewritten",
                    seen.seq, seen.hash
                )));
            }
        }
        let check = answer(self.get("/v1/admin/devices/check").await?).await?;
        let json = serde_json::to_string(&d.head).map_err(|e| CliError::Other(e.to_string()))?;
        self.desk.store.set_setting(SEEN_HEAD, &json)?;
        Ok((d.head, check))
    }
}

/// What `kiemtra admin` does over HTTP with an enrolled desk.
#[derive(clap::Subcommand)]
pub enum Request {
    /// Over HTTP with this administrator's (or auditor's) desk: the
    /// administration log, entry by entry, replayed and checked here.
    Log,
    /// Verify the administration log and every device the server holds
    /// against it; remembers the head, so a log cut or rewritten since the
    /// last verification is caught.
    VerifyLog,
    /// Create a user (signed by this desk).
    ///
    /// Example: kiemtra admin user-add truong-doan "Trần Văn Đoàn" --role supervisor
    UserAdd {
        id: String,
        name: String,
        #[arg(long, default_value = "inspector")]
        role: String,
    },
    /// Create a team.
    TeamAdd { id: String, name: String },
    /// Set a team's members (and its leaders, supervisors among them).
    TeamMembers {
        team: String,
        #[arg(long, value_delimiter = ',')]
        leaders: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Import areas, units or staff (rosters) from a CSV or .xlsx file, all
    /// or nothing.
    ///
    /// Example: kiemtra admin import units units.xlsx --valid-from 01/01/2015
    Import {
        /// areas, units or staff
        kind: String,
        file: std::path::PathBuf,
        #[arg(long)]
        valid_from: String,
    },
    /// Issue a single-use enrollment code, signed by this desk.
    Code {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: String,
        #[arg(long, default_value = "inspector")]
        role: String,
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
    },
    /// Revoke a device, signed by this desk.
    RevokeDevice { device_id: String },
    /// Publish a checklist version (a template file as in fixtures/templates).
    TemplatePublish { file: std::path::PathBuf },
    /// Create a campaign pinned to a published template version.
    ///
    /// Example: kiemtra admin campaign-create ct-2015 "Kiểm tra đột xuất năm 2015"
    ///   --decision "Quyết định 138/QĐ-UBND ngày 19/01/2017" --starts 01/08/2015
    ///   --ends 31/12/2015 --province can-tho --template standard --version 1 --teams doan-1,doan-2
    CampaignCreate {
        id: String,
        title: String,
        #[arg(long, default_value = "")]
        decision: String,
        #[arg(long)]
        starts: String,
        #[arg(long)]
        ends: String,
        #[arg(long)]
        province: String,
        #[arg(long)]
        template: String,
        #[arg(long)]
        version: u32,
        #[arg(long, value_delimiter = ',')]
        teams: Vec<String>,
    },
    /// Commit a random draw on the server before it is made: prints the
    /// secret seed (keep it until the reveal); the commitment and the
    /// candidates go into the campaign's log for everyone to see.
    DrawCommit {
        campaign: String,
        #[arg(long)]
        n: u32,
        /// A file of candidate unit codes, one per line.
        #[arg(long)]
        units: std::path::PathBuf,
    },
    /// Reveal a committed draw's seed: the selection anyone can recompute
    /// is logged with it.
    DrawReveal { campaign: String, seed: String },
    /// Assign a unit to a team on a planned day: the server creates the
    /// visit (its id chosen here at random) and the team's phones receive it.
    Assign {
        campaign: String,
        #[arg(long)]
        team: String,
        #[arg(long)]
        unit: String,
        #[arg(long)]
        on: String,
    },
    /// Export a list (users, teams, areas, units, devices, campaigns).
    Export {
        list: String,
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn id<T>(parse: impl Fn(&str) -> kiemtra_core::Result<T>, s: &str) -> Result<T> {
    parse(s).map_err(|e| CliError::Invalid(e.to_string()))
}

pub fn run(desk: &mut Desk, request: Request) -> Result<()> {
    let rt = runtime()?;
    let mut c = AdminClient::new(desk);
    rt.block_on(async {
        let head = match request {
            Request::Log => {
                let (entries, d) = c.log().await?;
                for e in &entries {
                    let by = match &e.by {
                        Author::Device { device_id } => device_id.as_str(),
                        Author::Server => "server",
                    };
                    println!("{:>5}  {}  {:<20}  {}", e.seq, e.at, e.act.name(), by);
                }
                println!("head {} {}", d.head.seq, d.head.hash);
                return Ok(());
            }
            Request::VerifyLog => {
                let (head, check) = c.verify().await?;
                println!("log verified: {} entries, head {}", head.seq, head.hash);
                let problems = check["problems"].as_array().cloned().unwrap_or_default();
                for p in &problems {
                    println!(
                        "{}  {}  {}",
                        p["rule"].as_str().unwrap_or(""),
                        p["device_id"].as_str().unwrap_or(""),
                        p["detail"].as_str().unwrap_or("")
                    );
                }
                if !problems.is_empty() {
                    return Err(CliError::Problems(format!(
                        "{} device problem(s)",
                        problems.len()
                    )));
                }
                println!(
                    "devices: {} checked, all as the log enrolled them",
                    check["devices_checked"]
                );
                return Ok(());
            }
            Request::UserAdd { id: u, name, role } => {
                c.act(vec![Act::UserCreated {
                    user_id: id(UserId::parse, &u)?,
                    full_name: kiemtra_core::text::nfc(name.trim()),
                    role: id(Role::parse, &role)?,
                }])
                .await?
            }
            Request::TeamAdd { id: t, name } => {
                c.act(vec![Act::TeamCreated {
                    team_id: id(TeamId::parse, &t)?,
                    name: kiemtra_core::text::nfc(name.trim()),
                }])
                .await?
            }
            Request::TeamMembers {
                team,
                leaders,
                members,
            } => {
                let parse = |v: &[String]| -> Result<Vec<UserId>> {
                    v.iter().map(|s| id(UserId::parse, s)).collect()
                };
                c.act(vec![Act::TeamMembers {
                    team_id: id(TeamId::parse, &team)?,
                    leaders: parse(&leaders)?,
                    members: parse(&members)?,
                }])
                .await?
            }
            Request::Import {
                kind,
                file,
                valid_from,
            } => {
                let bytes = std::fs::read(&file)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", file.display())))?;
                let acts = c.prepare_import(&kind, bytes, &valid_from).await?;
                let n = acts.len();
                let head = c.act(acts).await?;
                println!("imported {} ({n} act(s))", file.display());
                head
            }
            Request::Code {
                user,
                team,
                role,
                ttl_hours,
            } => {
                let code =
                    kiemtra_server::new_code().map_err(|e| CliError::Other(e.to_string()))?;
                let hash = kiemtra_admin::log::sha256_hex(
                    kiemtra_server::normalise_code(&code).as_bytes(),
                );
                let expires = timestamp(chrono::Utc::now() + chrono::Duration::hours(ttl_hours));
                let head = c
                    .act(vec![Act::CodeIssued {
                        code_hash: hash,
                        user_id: id(UserId::parse, &user)?,
                        team_id: id(TeamId::parse, &team)?,
                        role: id(Role::parse, &role)?,
                        expires_at: expires,
                    }])
                    .await?;
                // The code alone, so that scripts can take it.
                let _ = head;
                println!("{code}");
                return Ok(());
            }
            Request::RevokeDevice { device_id } => {
                c.act(vec![Act::DeviceRevoked { device_id }]).await?
            }
            Request::DrawCommit { campaign, n, units } => {
                let text = std::fs::read_to_string(&units)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", units.display())))?;
                let mut candidates = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| id(kiemtra_core::UnitCode::parse, l))
                    .collect::<Result<Vec<_>>>()?;
                candidates.sort();
                candidates.dedup();
                let seed = kiemtra_admin::draw::new_seed()
                    .ok_or_else(|| CliError::Other("no randomness for the seed".into()))?;
                c.act(vec![Act::DrawCommitted {
                    campaign_id: id(kiemtra_core::CampaignId::parse, &campaign)?,
                    commitment: kiemtra_admin::draw::commitment_of(&seed),
                    candidates,
                    count: n,
                }])
                .await?;
                println!("seed {}", kiemtra_core::hex::encode(&seed));
                return Ok(());
            }
            Request::DrawReveal { campaign, seed } => {
                let campaign_id = id(kiemtra_core::CampaignId::parse, &campaign)?;
                let (_, d) = c.log().await?;
                let draw = d
                    .campaigns
                    .get(&campaign_id)
                    .and_then(|c| c.draws.iter().find(|d| d.seed.is_none()))
                    .ok_or_else(|| {
                        CliError::NotFound(format!("campaign {campaign} has no draw to reveal"))
                    })?;
                let raw = kiemtra_core::hex::decode(seed.trim())
                    .ok_or_else(|| CliError::Invalid("the seed is 64 hex characters".into()))?;
                let selection =
                    kiemtra_admin::draw::select(&raw, &draw.candidates, draw.count as usize);
                let head = c
                    .act(vec![Act::DrawRevealed {
                        campaign_id,
                        seed: seed.trim().to_owned(),
                        selection: selection.clone(),
                    }])
                    .await?;
                for u in &selection {
                    println!("{u}");
                }
                head
            }
            Request::TemplatePublish { file } => {
                let json = std::fs::read_to_string(&file)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", file.display())))?;
                let t = kiemtra_core::Template::from_json(&json)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", file.display())))?;
                c.act(vec![Act::TemplatePublished {
                    template_id: t.id,
                    version: t.version,
                    json,
                }])
                .await?
            }
            Request::CampaignCreate {
                id: campaign,
                title,
                decision,
                starts,
                ends,
                province,
                template,
                version,
                teams,
            } => {
                let date =
                    |s: &str| kiemtra_admin::import::parse_date(s).map_err(CliError::Invalid);
                c.act(vec![Act::CampaignCreated {
                    campaign_id: id(kiemtra_core::CampaignId::parse, &campaign)?,
                    title: kiemtra_core::text::nfc(title.trim()),
                    decision: kiemtra_core::text::nfc(decision.trim()),
                    starts_on: date(&starts)?,
                    ends_on: date(&ends)?,
                    province: id(kiemtra_core::UnitCode::parse, &province)?,
                    template_id: id(kiemtra_core::TemplateId::parse, &template)?,
                    template_version: version,
                    teams: teams
                        .iter()
                        .map(|t| id(TeamId::parse, t))
                        .collect::<Result<Vec<_>>>()?,
                }])
                .await?
            }
            Request::Assign {
                campaign,
                team,
                unit,
                on,
            } => {
                let random = uuid::Uuid::new_v4().simple().to_string();
                let mut visit = format!("{campaign}.{unit}.{}", &random[..12]);
                if visit.len() > 64 {
                    visit = format!("v.{random}");
                }
                let head = c
                    .act(vec![Act::Assigned {
                        campaign_id: id(kiemtra_core::CampaignId::parse, &campaign)?,
                        team_id: id(TeamId::parse, &team)?,
                        unit: id(kiemtra_core::UnitCode::parse, &unit)?,
                        planned_on: kiemtra_admin::import::parse_date(&on)
                            .map_err(CliError::Invalid)?,
                        visit_id: id(kiemtra_core::VisitId::parse, &visit)?,
                    }])
                    .await?;
                println!("{visit}");
                head
            }
            Request::Export { list, format, out } => {
                let bytes = c.export(&list, &format).await?;
                match out {
                    Some(path) => std::fs::write(&path, bytes)
                        .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?,
                    None => {
                        use std::io::Write;
                        std::io::stdout()
                            .write_all(&bytes)
                            .map_err(|e| CliError::Other(e.to_string()))?;
                    }
                }
                return Ok(());
            }
        };
        println!("log entry {} {}", head.seq, head.hash);
        Ok(())
    })
}
