//! `cyclegan eval --model RUN --data DATA`: translate the test sets in memory, score each
//! direction against the other domain's real test images, and keep the run's history.
//!
//! `RUN_DIR/eval.jsonl` holds one [`EvalRecord`] per evaluation (appended; the run page reads
//! it back with [`read_history`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{FeatureExtractor, Features, Scores, list_folder, scores};
use crate::checkpoint;
use crate::family::Direction;
use crate::translate::Translator;

/// One line of `eval.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// When the evaluation finished, UTC (`2026-11-29T22:10:00Z`).
    pub time: String,
    /// The checkpoint's global iteration (absent for a bare generator file).
    pub iteration: Option<u64>,
    /// The model evaluated (run, checkpoint or generator file).
    pub model: PathBuf,
    /// The dataset whose `testA`/`testB` were used.
    pub data: PathBuf,
    /// `G_A(testA)` against `testB`.
    pub a2b: Option<Scores>,
    /// `G_B(testB)` against `testA` (absent when the model has no `G_B`).
    pub b2a: Option<Scores>,
}

/// `G_A`, `G_B` when the model has it, and the checkpoint's iteration when it is one.
type Loaded = (Translator, Option<Translator>, Option<u64>);

/// The translators a model offers, and the checkpoint iteration when it has one.
fn load_translators(model: &Path, device: &Device) -> Result<Loaded> {
    if model.is_dir() {
        let loaded = checkpoint::open(model)?;
        // One-generator families (CUT, FastCUT) have no B to A.
        let b2a = loaded.generator(Direction::B2a, device).ok();
        return Ok((
            Translator::new(loaded.generator(Direction::A2b, device)?, device),
            b2a.map(|g| Translator::new(g, device)),
            Some(loaded.state.global_iter),
        ));
    }
    // A single generator file: one direction only.
    Ok((Translator::load(model, Direction::A2b, device)?, None, None))
}

/// Features of `translator` applied to every image of `dir`, in batches.
fn translated_features(
    extractor: &FeatureExtractor,
    translator: &Translator,
    dir: &Path,
    progress: &mut dyn FnMut(&str, usize, usize),
    label: &str,
) -> Result<Features> {
    let files = list_folder(dir)?;
    let mut rows: Vec<f64> = Vec::with_capacity(files.len() * super::inception::FEATURES);
    for (i, chunk) in files.chunks(extractor.batch).enumerate() {
        let images = chunk
            .par_iter()
            .map(|f| cyclegan_data::imageio::decode_rgb(f).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        let fakes = translator.translate(&images);
        let f = extractor.features(&fakes, &mut |_| {});
        rows.extend(
            f.row_iter()
                .flat_map(|r| r.iter().copied().collect::<Vec<_>>()),
        );
        progress(label, i * extractor.batch + chunk.len(), files.len());
    }
    Ok(Features::from_row_slice(
        files.len(),
        super::inception::FEATURES,
        &rows,
    ))
}

/// Evaluate `model` on `data/testA` and `data/testB`; `progress` gets (what, done, total).
pub fn evaluate_model(
    model: &Path,
    data: &Path,
    extractor: &FeatureExtractor,
    device: &Device,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalRecord> {
    let (test_a, test_b) = (data.join("testA"), data.join("testB"));
    for dir in [&test_a, &test_b] {
        if !dir.is_dir() {
            bail!(
                "{}: missing; --data must be a dataset folder with testA/ and testB/ (as `cyclegan prepare` writes)",
                dir.display()
            );
        }
    }
    let (g_a, g_b, iteration) = load_translators(model, device)?;
    let real_a = extractor.features_of_folder(&test_a, &mut |d, n| progress("real A", d, n))?;
    let real_b = extractor.features_of_folder(&test_b, &mut |d, n| progress("real B", d, n))?;
    let fake_b = translated_features(extractor, &g_a, &test_a, progress, "G_A(testA)")?;
    let a2b = Some(scores(&real_b, &fake_b));
    let b2a = match &g_b {
        Some(g_b) => {
            let fake_a = translated_features(extractor, g_b, &test_b, progress, "G_B(testB)")?;
            Some(scores(&real_a, &fake_a))
        }
        None => None,
    };
    Ok(EvalRecord {
        time: utc_now(),
        iteration,
        model: model.to_path_buf(),
        data: data.to_path_buf(),
        a2b,
        b2a,
    })
}

/// Append `record` to `run_dir/eval.jsonl` (one line, flushed to disk).
pub fn append_history(run_dir: &Path, record: &EvalRecord) -> Result<()> {
    let path = run_dir.join("eval.jsonl");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open for appending", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(record)?)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// The records of `run_dir/eval.jsonl`, oldest first (unreadable lines are skipped).
pub fn read_history(run_dir: &Path) -> Vec<EvalRecord> {
    std::fs::read_to_string(run_dir.join("eval.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
pub fn format_utc(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, with eras of 400 years starting 0000-03-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_796_000_000), "2026-11-30T00:53:20Z");
    }

    #[test]
    fn history_appends_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let kid = super::super::Kid {
            mean: 0.01,
            std: 0.001,
            subset_size: 10,
            subsets: 100,
        };
        let rec = EvalRecord {
            time: "2026-01-01T00:00:00Z".into(),
            iteration: Some(40),
            model: "runs/x".into(),
            data: "data".into(),
            a2b: Some(Scores {
                fid: 12.5,
                kid,
                n_real: 10,
                n_fake: 10,
            }),
            b2a: None,
        };
        append_history(tmp.path(), &rec).unwrap();
        append_history(tmp.path(), &rec).unwrap();
        assert_eq!(read_history(tmp.path()), vec![rec.clone(), rec]);
    }
}
