//! The command line's bulk clients: `import` sends a file of command lines to a node's
//! `POST /v1/imports` in chunks, `export` saves a node's `GET /v1/exports`.

mod export;
mod import;
mod tally;

pub use export::{ExportOptions, export};
pub use import::{ImportOptions, import};
pub use tally::ImportSummary;

/// Why a bulk transfer stopped.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url} answered a line that is not an import result: {line}")]
    Unreadable { url: String, line: String },
    #[error("the progress bar's template is invalid: {0}")]
    Progress(#[from] indicatif::style::TemplateError),
}
