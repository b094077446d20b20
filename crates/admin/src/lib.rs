//! The administration of kiemtra, with no I/O: the signed administration
//! log ([`log`]), the directory it builds and the rules every act is
//! checked by ([`directory`]), imports of areas, units and rosters from CSV
//! and Excel files ([`import`]), exports of lists ([`export`]), the
//! campaign report ([`report`]) and its PDF in the layout of
//! administrative documents ([`pdf`]), and
//! verifiable random draws ([`draw`]). The server stores the log and runs
//! these rules before it keeps an entry; an auditor's desk runs the same
//! rules over the whole log.

pub mod directory;
pub mod draw;
pub mod export;
pub mod import;
pub mod log;
pub mod pdf;
pub mod report;

pub use directory::{
    Area, Assignment, Campaign, Directory, LoggedDevice, Refusal, Team, Tier, UnitEntry,
    UnitRecord, User,
};
pub use export::{Cell, ExportFormat, Table};
pub use import::{Kind as ImportKind, RowError};
pub use log::{Act, Author, Entry, Head};
