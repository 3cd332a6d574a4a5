//! `losses.jsonl`: one line per iteration, written by the loop and read by plots and reports.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::family::Losses;
use cyclegan_data::atomic::write_atomic;

/// One line of `losses.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LossRecord {
    /// Global iteration (1-based: the number of iterations done).
    pub iter: u64,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// The model's named losses.
    #[serde(flatten)]
    pub losses: Losses,
}

/// The loss log of a run, open for appending.
pub struct LossLog {
    path: PathBuf,
    file: File,
}

impl LossLog {
    /// Open `RUN_DIR/losses.jsonl`, dropping lines after iteration `iter` (work lost since the
    /// checkpoint training continues from).
    pub fn open(run_dir: &Path, iter: u64) -> Result<LossLog> {
        let path = run_dir.join("losses.jsonl");
        if let Ok(text) = fs::read_to_string(&path) {
            let kept: String = text
                .lines()
                .filter(|l| serde_json::from_str::<LossRecord>(l).is_ok_and(|r| r.iter <= iter))
                .map(|l| format!("{l}\n"))
                .collect();
            write_atomic(&path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        Ok(LossLog { path, file })
    }

    /// Append one iteration's record.
    pub fn append(&mut self, record: &LossRecord) -> Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(record)?)
            .with_context(|| format!("{}: write failed", self.path.display()))
    }

    /// Push what was written to the operating system (before a checkpoint).
    pub fn flush(&mut self) {
        self.file.flush().ok();
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Every readable record of a loss log (unreadable lines, e.g. one cut by a crash, skipped).
pub fn read_records(path: &Path) -> Vec<LossRecord> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
