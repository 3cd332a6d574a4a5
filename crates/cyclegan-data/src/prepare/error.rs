//! Why `prepare` stopped without a dataset.

use std::path::{Path, PathBuf};

use crate::sources;

/// Why `prepare` stopped without a dataset.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// An option is out of range.
    #[error("{0}")]
    Option(String),
    /// A source cannot be used.
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    /// The output folder is not empty and `--overwrite` was not given.
    #[error(
        "{0}: the output folder is not empty; choose a new folder, or pass --overwrite to replace its dataset (the old trainA/trainB/testA/testB, manifest.jsonl and report.md are moved into {0}/.replaced-<time>/, nothing is deleted)"
    )]
    OutNotEmpty(PathBuf),
    /// A domain ended up with no picture.
    #[error("domain {domain} has no usable picture{details}; nothing was written")]
    EmptyDomain { domain: String, details: String },
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing `manifest.jsonl` or `report.md` failed (the old one, if any, is intact).
    #[error(transparent)]
    Write(#[from] crate::atomic::WriteError),
}

/// Map an I/O error on `path` to [`PrepareError::Io`].
pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PrepareError + '_ {
    move |source| PrepareError::Io {
        path: path.to_path_buf(),
        source,
    }
}
