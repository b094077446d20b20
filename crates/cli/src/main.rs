//! `kiemtra`: the desk tool of supervisors, auditors and administrators.
//!
//! The desk is a device of its own: `kiemtra login` enrolls it with a code
//! (it gets its own key and a local store under `--home`), `kiemtra sync`
//! exchanges visits with the server, and the other commands work on what it
//! holds — resolving, approving and returning are signed by the desk's key
//! and sent at once. `admin` works on the server's own data folder.
//!
//! Exit codes: 0 ok; 1 other failure; 2 bad input; 3 not found; 4 not
//! allowed for this role; 5 network or server refusal; 6 verification found
//! problems.

mod admin_http;
mod builtin;
mod demo;
mod desk;
mod draw;
mod fixture_tally;

use clap::{Parser, Subcommand};
use desk::{CliError, Desk, Result, lang_of, table};
use kiemtra_core::{Lang, Observation, VisitId, format_time};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiemtra",
    version,
    about = "kiemtra — unannounced inspections of public offices (the desk tool)",
    after_help = "Examples:\n  kiemtra login --server https://kiemtra.example.vn --code ABCD-EFGH-JKLM\n  kiemtra sync\n  kiemtra visits --campaign cantho-2015\n  kiemtra conflicts\n  kiemtra resolve cantho-2015.u-01 attendance/s-001 1\n  kiemtra approve --campaign cantho-2015 --all\n  kiemtra report cantho-2015 --lang vi --format md\n  kiemtra replay u-01 --diff 2015-08-31T07:00:00+07:00 2015-08-31T10:00:00+07:00\n  kiemtra demo"
)]
struct Cli {
    /// Folder of this desk's store and credentials.
    #[arg(
        long,
        env = "KIEMTRA_HOME",
        default_value = "kiemtra-desk",
        global = true
    )]
    home: PathBuf,
    /// Language of the output: vi or en.
    #[arg(long, env = "KIEMTRA_LANG", default_value = "vi", global = true)]
    lang: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync server (the same as `kiemtra-server`).
    ///
    /// Example: kiemtra serve --listen 0.0.0.0:8080 --data /var/lib/kiemtra
    Serve {
        #[arg(long, env = "KIEMTRA_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, env = "KIEMTRA_DATA", default_value = "kiemtra-data")]
        data: PathBuf,
        #[command(flatten)]
        options: kiemtra_server::ServeOptions,
    },
    /// Administration: over HTTP with an administrator's (or auditor's)
    /// enrolled desk (users, teams, imports, codes, campaigns, assignments,
    /// draws, the signed log); `enroll-code`, `devices` and `revoke` run on
    /// the server machine against its data folder.
    Admin {
        /// The server's data folder.
        #[arg(long, env = "KIEMTRA_DATA", default_value = "kiemtra-data")]
        data: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Enroll this desk with a code from an administrator.
    ///
    /// Example: kiemtra login --server http://127.0.0.1:8080 --code ABCD-EFGH-JKLM
    Login {
        #[arg(long)]
        server: String,
        #[arg(long)]
        code: String,
        #[arg(long, default_value = "kiemtra desk")]
        name: String,
    },
    /// Exchange visits with the server.
    Sync,
    /// Merge on site with no signal: write this desk's visits to a bundle
    /// file, or read a colleague's in (SPEC §13).
    ///
    /// Example: kiemtra bundle write to-team.ktb; kiemtra bundle read from-an.ktb
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Fetch the team's devices and keys (needed to read bundles offline;
    /// `sync` does it when the list is missing or a day old).
    TeamRefresh,
    /// Create the team's visits of a campaign from a roster CSV (one row per
    /// person: unit_code,unit_name,unit_kind,area,staff_id,staff_name,
    /// position,category,on_payroll), then sync. All or nothing.
    ///
    /// Example: kiemtra assign --campaign cantho-2015 --csv roster.csv --date 2015-08-31
    Assign {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        date: String,
        #[arg(long, default_value = "fixtures/templates/standard-v1.json")]
        template: PathBuf,
    },
    /// A verifiable random draw of units (commit, then reveal).
    Draw {
        #[command(subcommand)]
        command: DrawCommand,
    },
    /// The visits on this desk.
    Visits {
        #[arg(long)]
        campaign: Option<String>,
    },
    /// One visit: tallies, attendance, checks, findings.
    ///
    /// Example: kiemtra show cantho-2015.u-01 --lang en
    Show { visit: String },
    /// Fields the replicas disagree on, with every candidate.
    Conflicts { visit: Option<String> },
    /// Settle a conflict with a candidate (as `conflicts` numbers them), then sync.
    ///
    /// Example: kiemtra resolve cantho-2015.u-01 attendance/s-001 1
    Resolve {
        visit: String,
        field: String,
        candidate: usize,
    },
    /// Approve submitted visits (signed with this desk's key), then sync.
    Approve {
        visits: Vec<String>,
        /// With --all: every submitted visit of this campaign.
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long, requires = "campaign")]
        all: bool,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Return a submitted visit to its inspectors with the reason, then sync.
    Return {
        visit: String,
        #[arg(long)]
        reason: String,
    },
    /// The campaign report from approved states (md, csv, json, xlsx; pdf from the server).
    ///
    /// Example: kiemtra report cantho-2015 --format xlsx --out report.xlsx
    Report {
        campaign: String,
        /// md, csv, json, xlsx or pdf (xlsx and pdf need --out; pdf --server).
        #[arg(long, default_value = "md")]
        format: String,
        #[arg(long)]
        title: Option<String>,
        /// Report from what the desk holds, without syncing first.
        #[arg(long, conflicts_with = "server")]
        offline: bool,
        /// The server's report instead: computed there over the visits this
        /// desk's user may see, with the administration directory's units
        /// (kinds of the campaign's era, merged units with those absorbed).
        #[arg(long)]
        server: bool,
        /// Write the report to this file instead of the terminal.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// The timeline of a visit; --at a time or change; --diff between two.
    Replay {
        visit: String,
        #[arg(long, conflicts_with = "diff")]
        at: Option<String>,
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        diff: Option<Vec<String>>,
    },
    /// The server's verification of a visit or a whole campaign.
    Verify { target: String },
    /// Save a photo (evidence file) of a visit, checked against its SHA-256.
    ///
    /// Example: kiemtra evidence cantho-2015.u-01 9f86d0…0a08 --out hotline.jpg
    Evidence {
        visit: String,
        /// The file's SHA-256, as `show` lists it under the office check.
        sha256: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// A visit or a campaign as JSON or CSV (attendance rows).
    Export {
        visit: Option<String>,
        #[arg(long)]
        campaign: Option<String>,
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// The whole story in one command: a server in a temporary folder, a
    /// supervisor's and two inspectors' phones, the Cần Thơ 2015 campaign
    /// recorded offline with conflicts, synced, resolved, approved, and the
    /// Vietnamese campaign report.
    ///
    /// Example: kiemtra demo
    Demo {
        /// A campaign fixture file (its checklist from `../templates/`
        /// beside its folder); by default the Cần Thơ 2015 campaign this
        /// binary carries.
        #[arg(long)]
        campaign: Option<PathBuf>,
    },
    /// Records a campaign fixture into a local store and prints its tallies.
    FixtureTally {
        /// As for `demo`: by default the campaign this binary carries.
        #[arg(long)]
        campaign: Option<PathBuf>,
        #[arg(long, env = "KIEMTRA_DATA", default_value = "kiemtra-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Single-use enrollment codes for a user's devices.
    ///
    /// Example: kiemtra admin enroll-code --user truong-doan --team team-1 --role supervisor
    EnrollCode {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: String,
        #[arg(long, default_value = "inspector")]
        role: String,
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Enrolled devices with their users, teams and roles.
    Devices,
    /// Revoke a device.
    Revoke { device_id: String },
    #[command(flatten)]
    Http(admin_http::Request),
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Write visits (all this desk holds when none is named) with their
    /// signatures to FILE.
    Write {
        file: PathBuf,
        #[arg(long = "visit")]
        visits: Vec<String>,
    },
    /// Check FILE (team, acceptance rule, every signature) and merge it
    /// in; a bad bundle changes nothing.
    Read { file: PathBuf },
}

#[derive(Subcommand)]
enum DrawCommand {
    /// Publish a commitment; prints the secret seed to keep until the reveal.
    Commit {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        n: usize,
        /// A file with one candidate unit code per line.
        #[arg(long)]
        units: PathBuf,
    },
    /// Reveal the seed: checked against the commitment, selection recorded.
    Reveal {
        #[arg(long)]
        campaign: String,
        #[arg(long)]
        commitment: String,
        #[arg(long)]
        seed: String,
    },
    /// Recompute a draw anywhere, without a desk.
    Check {
        #[arg(long)]
        commitment: String,
        #[arg(long)]
        seed: String,
        #[arg(long)]
        n: usize,
        #[arg(long)]
        units: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can carry the server's words and the user's input.
            eprintln!(
                "kiemtra: {}",
                kiemtra_server::printable_lines(&e.to_string())
            );
            ExitCode::from(e.exit_code())
        }
    }
}

fn other(e: impl std::fmt::Display) -> CliError {
    CliError::Other(e.to_string())
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?
        .lines()
        .map(str::to_owned)
        .collect())
}

fn draws_key(campaign: &str) -> String {
    format!("draws.{campaign}")
}

fn load_draws(desk: &Desk, campaign: &str) -> Result<Vec<draw::Draw>> {
    match desk.store.setting(&draws_key(campaign))? {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json).map_err(other),
    }
}

fn save_draws(desk: &mut Desk, campaign: &str, draws: &[draw::Draw]) -> Result<()> {
    let json = serde_json::to_string(draws).map_err(other)?;
    desk.store.set_setting(&draws_key(campaign), &json)?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let lang = lang_of(&cli.lang)?;
    let home = cli.home;
    match cli.command {
        Command::Serve {
            listen,
            data,
            options,
        } => {
            kiemtra_server::init_logging(options.log_json);
            // Settings the server refuses at start are bad input (exit 2);
            // anything failing later is not.
            kiemtra_server::serve(options.settings(listen, data)).map_err(|e| {
                if e.is::<kiemtra_server::StartError>() {
                    CliError::Invalid(e.to_string())
                } else {
                    other(e)
                }
            })
        }
        Command::Admin { data, command } => {
            let request = match command {
                AdminCommand::Http(request) => request,
                c => return admin(&data, c),
            };
            let mut desk = Desk::open(&home)?;
            admin_http::run(&mut desk, request)
        }
        Command::Login { server, code, name } => {
            let desk = Desk::login(&home, &server, &code, &name)?;
            println!(
                "{}: {} ({}, {}) — {}",
                match lang {
                    Lang::Vi => "Đã đăng ký",
                    Lang::En => "Enrolled",
                },
                desk::p(&desk.creds.user_id),
                desk::p(&desk.creds.role),
                desk::p(&desk.creds.team),
                desk::p(&desk.creds.device_id)
            );
            Ok(())
        }
        Command::Sync => {
            let mut desk = Desk::open(&home)?;
            let r = desk.sync()?;
            println!(
                "{} request(s); {} visit(s) sent, {} received; {} B up, {} B down",
                r.requests, r.visits_uploaded, r.visits_downloaded, r.bytes_sent, r.bytes_received
            );
            Ok(())
        }
        Command::Bundle { command } => {
            let mut desk = Desk::open(&home)?;
            match command {
                BundleCommand::Write { file, visits } => {
                    let ids = visits
                        .iter()
                        .map(|v| desk.find(v))
                        .collect::<Result<Vec<_>>>()?;
                    let creds = desk.creds.clone();
                    let bytes = kiemtra_client::write_bundle(&mut desk.store, &creds, &ids)
                        .map_err(|e| CliError::Invalid(e.to_string()))?;
                    std::fs::write(&file, &bytes).map_err(|e| {
                        CliError::Invalid(format!("writing {}: {e}", file.display()))
                    })?;
                    println!(
                        "đã ghi {} ({} B) / wrote {} ({} B)",
                        file.display(),
                        bytes.len(),
                        file.display(),
                        bytes.len()
                    );
                }
                BundleCommand::Read { file } => {
                    let bytes = std::fs::read(&file).map_err(|e| {
                        CliError::Invalid(format!("reading {}: {e}", file.display()))
                    })?;
                    let creds = desk.creds.clone();
                    let r = kiemtra_client::read_bundle(&mut desk.store, &creds, &bytes)
                        .map_err(|e| CliError::Invalid(e.to_string()))?;
                    println!(
                        "từ {}: {} biên bản mới, {} cập nhật, {} không đổi; {} thay đổi mới / \
                         from {}: {} new visit(s), {} updated, {} unchanged; {} new change(s)",
                        desk::p(&r.writer),
                        r.added.len(),
                        r.updated.len(),
                        r.unchanged.len(),
                        r.new_changes,
                        desk::p(&r.writer),
                        r.added.len(),
                        r.updated.len(),
                        r.unchanged.len(),
                        r.new_changes
                    );
                }
            }
            Ok(())
        }
        Command::TeamRefresh => {
            let mut desk = Desk::open(&home)?;
            let client = kiemtra_client::SyncClient::new(desk.creds.clone(), Default::default())
                .map_err(|e| CliError::Network(e.to_string()))?;
            let n = desk::runtime()?
                .block_on(client.refresh_team(&mut desk.store))
                .map_err(|e| CliError::Network(e.to_string()))?;
            println!("{n} thiết bị của tổ / device(s) of the team");
            Ok(())
        }
        Command::Assign {
            campaign,
            csv,
            date,
            template,
        } => {
            let mut desk = Desk::open(&home)?;
            let n = desk::assign(&mut desk, &campaign, &template, &csv, &date)?;
            desk.sync()?;
            println!(
                "{n} visit(s) created for team {} and sent",
                desk::p(&desk.creds.team)
            );
            Ok(())
        }
        Command::Draw { command } => draw_command(&home, command),
        Command::Visits { campaign } => {
            let desk = Desk::open(&home)?;
            let rows = desk
                .store
                .list_visits()?
                .into_iter()
                .filter(|s| campaign.as_ref().is_none_or(|c| &s.campaign == c))
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.unit_name,
                        s.status,
                        format!("{}/{}", s.tally.present, s.tally.payroll),
                        s.tally.absent.to_string(),
                        s.conflicts.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "visit",
                    "unit",
                    "status",
                    "present/payroll",
                    "absent",
                    "conflicts",
                ],
                rows,
            );
            Ok(())
        }
        Command::Show { visit } => {
            let mut desk = Desk::open(&home)?;
            let id = desk.find(&visit)?;
            let state = desk.store.visit(&id)?.state()?;
            print!("{}", desk::show_state(&state, lang));
            Ok(())
        }
        Command::Conflicts { visit } => {
            let mut desk = Desk::open(&home)?;
            let ids: Vec<VisitId> = match visit {
                Some(v) => vec![desk.find(&v)?],
                None => desk
                    .store
                    .list_visits()?
                    .into_iter()
                    .filter(|s| s.conflicts > 0)
                    .map(|s| s.id)
                    .collect(),
            };
            let mut rows = Vec::new();
            for id in ids {
                let state = desk.store.visit(&id)?.state()?;
                for c in state.conflicts() {
                    let differs = c
                        .differences()
                        .iter()
                        .map(|a| a.label(lang))
                        .collect::<Vec<_>>()
                        .join(", ");
                    for (i, cand) in c.candidates.iter().enumerate() {
                        rows.push(vec![
                            id.to_string(),
                            c.field.to_string(),
                            c.field.describe(lang, &state),
                            differs.clone(),
                            i.to_string(),
                            cand.value.describe_for(&c.field, lang, &state),
                            format_time(cand.value.observed_at().unwrap_or(cand.stamp.at)),
                            format!("{} ({})", cand.stamp.by, cand.stamp.device),
                            format_time(cand.stamp.at),
                        ]);
                    }
                }
            }
            table(
                &[
                    "visit",
                    "field",
                    "what",
                    "differs",
                    "candidate",
                    "value",
                    "observed",
                    "by",
                    "at",
                ],
                rows,
            );
            Ok(())
        }
        Command::Resolve {
            visit,
            field,
            candidate,
        } => {
            let mut desk = Desk::open(&home)?;
            let id = desk.find(&visit)?;
            let field = kiemtra_core::FieldRef::parse(&field)?;
            desk.store.edit(&id, |v| v.resolve(&field, candidate))?;
            desk.sync()?;
            println!("{id}: {field} ← {candidate}");
            Ok(())
        }
        Command::Approve {
            visits,
            campaign,
            all,
            note,
        } => {
            let mut desk = Desk::open(&home)?;
            let mut ids = Vec::new();
            for v in &visits {
                ids.push(desk.find(v)?);
            }
            if all && let Some(c) = &campaign {
                ids.extend(
                    desk.campaign_visits(c)?
                        .into_iter()
                        .filter(|s| s.status == "submitted")
                        .map(|s| s.id),
                );
            }
            if ids.is_empty() {
                return Err(CliError::Invalid(
                    "nothing to approve: name visits, or --campaign C --all".into(),
                ));
            }
            let bar = indicatif::ProgressBar::new(ids.len() as u64);
            for id in &ids {
                desk.approve(id, &note)?;
                bar.inc(1);
            }
            bar.finish_and_clear();
            desk.sync()?;
            println!("{} visit(s) approved and sent", ids.len());
            Ok(())
        }
        Command::Return { visit, reason } => {
            let mut desk = Desk::open(&home)?;
            let id = desk.find(&visit)?;
            desk.store.edit(&id, |v| v.return_visit(&reason))?;
            desk.sync()?;
            println!("{id}: returned");
            Ok(())
        }
        Command::Report {
            campaign,
            format,
            title,
            offline,
            server,
            out,
        } => {
            if matches!(format.as_str(), "xlsx" | "pdf") && out.is_none() {
                return Err(CliError::Invalid(format!(
                    "a .{format} report is written to a file: add --out FILE"
                )));
            }
            if format == "pdf" && !server {
                return Err(CliError::Invalid(
                    "the PDF report is made by the server, with its fonts and the directory's letterhead: add --server".into(),
                ));
            }
            let mut desk = Desk::open(&home)?;
            let mut bytes = if server {
                let lang = match lang {
                    Lang::Vi => "vi",
                    Lang::En => "en",
                };
                desk::runtime()?.block_on(
                    admin_http::AdminClient::new(&mut desk).report(&campaign, &format, lang),
                )?
            } else {
                if !offline {
                    desk.sync()?;
                }
                let r = desk::report(&mut desk, &campaign, title.as_deref(), lang)?;
                desk::report_bytes(&r, lang, &format)?
            };
            if format == "md" && !server {
                let draws = load_draws(&desk, &campaign)?;
                if !draws.is_empty() {
                    let mut extra = format!(
                        "\n## {}\n",
                        match lang {
                            Lang::Vi => "Bốc thăm ngẫu nhiên",
                            Lang::En => "Random draws",
                        }
                    );
                    for d in draws {
                        extra.push_str(&format!(
                            "- {} {} / {}: {} (commitment {}, seed {})\n",
                            d.committed_at,
                            d.n,
                            d.candidates.len(),
                            d.selected.join(", "),
                            d.commitment,
                            d.seed.as_deref().unwrap_or("—")
                        ));
                    }
                    bytes.extend_from_slice(extra.as_bytes());
                }
            }
            match out {
                Some(path) => std::fs::write(&path, &bytes)
                    .map_err(|e| CliError::Other(format!("writing {}: {e}", path.display())))?,
                None => {
                    let text = String::from_utf8_lossy(&bytes);
                    // Markdown is read on a terminal as it is; JSON escapes
                    // control characters itself; CSV is data and kept as
                    // recorded.
                    if format == "md" {
                        print!("{}", kiemtra_server::printable_lines(&text));
                    } else {
                        print!("{text}");
                    }
                }
            }
            Ok(())
        }
        Command::Replay { visit, at, diff } => {
            let mut desk = Desk::open(&home)?;
            if let Some(at) = at {
                let id = desk.find(&visit)?;
                let v = desk.store.visit(&id)?;
                let heads = desk::point(v, &at)?;
                print!("{}", desk::show_state(&v.state_at(&heads)?, lang));
                return Ok(());
            }
            if let Some(pair) = diff {
                let id = desk.find(&visit)?;
                let v = desk.store.visit(&id)?;
                for line in desk::diff_lines(v, &pair[0], &pair[1], lang)? {
                    println!("{line}");
                }
                return Ok(());
            }
            desk::replay(&mut desk, &visit, lang)
        }
        Command::Evidence { visit, sha256, out } => {
            let mut desk = Desk::open(&home)?;
            let id = desk.find(&visit)?;
            let bytes = desk::fetch_evidence(&mut desk, &id, &sha256)?;
            std::fs::write(&out, &bytes)
                .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
            println!(
                "{} B → {} (SHA-256 {})",
                bytes.len(),
                out.display(),
                match lang {
                    Lang::Vi => "khớp",
                    Lang::En => "checked",
                }
            );
            Ok(())
        }
        Command::Verify { target } => {
            let desk = Desk::open(&home)?;
            let body = desk::verify(&desk, &target)?;
            let (text, ok) = desk::render_verify(&body, lang);
            print!("{text}");
            if ok {
                Ok(())
            } else {
                Err(CliError::Problems(format!(
                    "{target}: verification found problems"
                )))
            }
        }
        Command::Export {
            visit,
            campaign,
            format,
        } => {
            let mut desk = Desk::open(&home)?;
            let ids: Vec<VisitId> = match (visit, campaign) {
                (Some(v), None) => vec![desk.find(&v)?],
                (None, Some(c)) => {
                    let list: Vec<VisitId> = desk
                        .campaign_visits(&c)?
                        .into_iter()
                        .map(|s| s.id)
                        .collect();
                    if list.is_empty() {
                        return Err(CliError::NotFound(format!("no visit of campaign {c:?}")));
                    }
                    list
                }
                _ => {
                    return Err(CliError::Invalid("export one VISIT or --campaign C".into()));
                }
            };
            print!("{}", desk::export(&mut desk, &ids, &format)?);
            Ok(())
        }
        Command::Demo { campaign } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(other)?;
            let report = rt
                .block_on(demo::run(campaign.as_deref(), &mut |line| {
                    eprintln!("{line}")
                }))
                .map_err(other)?;
            print!("{report}");
            Ok(())
        }
        Command::FixtureTally { campaign, data } => {
            print!(
                "{}",
                fixture_tally::run(campaign.as_deref(), &data).map_err(other)?
            );
            Ok(())
        }
    }
}

fn admin(data: &Path, command: AdminCommand) -> Result<()> {
    if !data.join("kiemtra.db").exists() {
        return Err(CliError::Invalid(format!(
            "no server database in {}",
            data.display()
        )));
    }
    let mut store = kiemtra_server::open_store(data).map_err(other)?;
    match command {
        AdminCommand::EnrollCode {
            user,
            team,
            role,
            ttl_hours,
            count,
        } => {
            kiemtra_core::Role::parse(&role)?;
            for _ in 0..count {
                let code = kiemtra_server::create_enrollment_code(
                    &mut store,
                    &user,
                    &team,
                    &role,
                    chrono::Duration::hours(ttl_hours),
                )
                .map_err(|e| CliError::Invalid(e.to_string()))?;
                println!("{code}");
            }
            Ok(())
        }
        AdminCommand::Devices => {
            let rows = store
                .devices()?
                .into_iter()
                .map(|d| {
                    vec![
                        d.device_id,
                        d.user_id,
                        d.team,
                        d.role,
                        d.name,
                        d.revoked_at.unwrap_or_else(|| "active".into()),
                    ]
                })
                .collect();
            table(&["device", "user", "team", "role", "name", "state"], rows);
            Ok(())
        }
        AdminCommand::Revoke { device_id } => {
            let done = kiemtra_server::admin::revoke_on_server_machine(&mut store, &device_id)
                .map_err(|e| match e.to_string() {
                    m if m.starts_with("no device") => CliError::NotFound(m),
                    m => CliError::Other(m),
                })?;
            println!("{done}");
            Ok(())
        }
        _ => Err(CliError::Invalid(
            "this command runs over HTTP with an enrolled desk, not on the data folder".into(),
        )),
    }
}

fn draw_command(home: &Path, command: DrawCommand) -> Result<()> {
    match command {
        DrawCommand::Commit { campaign, n, units } => {
            let mut desk = Desk::open(home)?;
            let (d, seed) = draw::commit(&campaign, n, &read_lines(&units)?)?;
            let mut draws = load_draws(&desk, &campaign)?;
            draws.push(d.clone());
            save_draws(&mut desk, &campaign, &draws)?;
            println!("commitment {}", d.commitment);
            println!("seed {seed}");
            eprintln!(
                "Công bố mã cam kết (commitment) trước khi bốc thăm; giữ bí mật seed đến khi công bố kết quả. / Publish the commitment now; keep the seed secret until the reveal."
            );
            Ok(())
        }
        DrawCommand::Reveal {
            campaign,
            commitment,
            seed,
        } => {
            let mut desk = Desk::open(home)?;
            let mut draws = load_draws(&desk, &campaign)?;
            let i = draws
                .iter()
                .position(|d| d.commitment == commitment)
                .ok_or_else(|| {
                    CliError::NotFound(format!(
                        "no draw with commitment {commitment} in campaign {campaign}"
                    ))
                })?;
            let revealed = draw::reveal(&draws[i], &seed)?;
            draws[i] = revealed.clone();
            save_draws(&mut desk, &campaign, &draws)?;
            for unit in &revealed.selected {
                println!("{unit}");
            }
            Ok(())
        }
        DrawCommand::Check {
            commitment,
            seed,
            n,
            units,
        } => {
            let d = draw::Draw {
                campaign: String::new(),
                n,
                candidates: draw::candidates(&read_lines(&units)?)?,
                commitment,
                committed_at: String::new(),
                seed: None,
                selected: Vec::new(),
                revealed_at: None,
            };
            for unit in draw::reveal(&d, &seed)?.selected {
                println!("{unit}");
            }
            Ok(())
        }
    }
}
