//! The demo campaign (Cần Thơ, 2015) and the checklist it uses, carried
//! inside the binary so that `kiemtra demo` and `kiemtra fixture-tally`
//! run from any folder, and from an installed binary with no repository.

use std::path::{Path, PathBuf};

/// The campaign fixture the demo plays.
pub const CAMPAIGN: &str = include_str!("../../../fixtures/campaigns/cantho-2015.json");

/// The checklists the binary carries, by the file name a fixture names.
const TEMPLATES: [(&str, &str); 1] = [(
    "standard-v1.json",
    include_str!("../../../fixtures/templates/standard-v1.json"),
)];

/// A campaign fixture could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct ReadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn read(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path).map_err(|source| ReadError {
        path: path.to_path_buf(),
        source,
    })
}

/// The campaign's JSON: the built-in one, or the file at `path`.
pub fn campaign(path: Option<&Path>) -> Result<String, ReadError> {
    match path {
        None => Ok(CAMPAIGN.to_owned()),
        Some(p) => read(p),
    }
}

/// The JSON of the checklist `name` that a campaign names: from the
/// `templates` folder beside the campaign's folder when the campaign was
/// read from a file and that folder has it, else the one the binary
/// carries.
pub fn template(campaign: Option<&Path>, name: &str) -> Result<String, ReadError> {
    let beside = campaign
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|root| root.join("templates").join(name));
    if let Some(path) = &beside
        && path.exists()
    {
        return read(path);
    }
    match TEMPLATES.iter().find(|(n, _)| *n == name) {
        Some((_, json)) => Ok((*json).to_owned()),
        None => Err(ReadError {
            path: beside.unwrap_or_else(|| PathBuf::from(name)),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such checklist beside the campaign, nor inside this binary",
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_campaign_and_its_checklist_parse() {
        let c = kiemtra_core::CampaignFixture::from_json(&campaign(None).expect("campaign"))
            .expect("the built-in campaign parses");
        let t = template(None, &c.template).expect("its checklist is built in");
        kiemtra_core::Template::from_json(&t).expect("the checklist parses");
    }

    #[test]
    fn an_unknown_checklist_or_file_is_a_clear_error() {
        let e = template(None, "nope-v9.json").expect_err("unknown");
        assert!(e.to_string().contains("nope-v9.json"), "{e}");
        let e = campaign(Some(Path::new("/nonexistent/c.json"))).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/c.json"), "{e}");
    }
}
