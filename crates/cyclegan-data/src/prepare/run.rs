//! [`prepare`]: the steps tied together (check, read, dedup and split, place, install), with
//! the output folder protected and the staging folder always cleaned up.

use std::path::Path;
use std::time::Instant;

use super::error::{PrepareError, io_err};
use super::install::{install, place_pictures, replaced_dir_if_needed, write_records};
use super::options::{self, Domain, PrepareOptions};
use super::read::{ReadAll, read_all};
use super::records::PrepareReport;
use super::split::{DomainSplit, cross_domain, dedup_and_split};
use crate::sources::{self, Skip};

/// Build the dataset. Returns the report (also written to `report.md`); with `strict` and
/// skipped inputs, nothing is installed and `installed` is false.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport, PrepareError> {
    let start = Instant::now();
    options::check(opts)?;
    let out = &opts.out;
    if out.exists() {
        if !out.is_dir() {
            return Err(PrepareError::Option(format!(
                "--out {}: exists and is not a folder",
                out.display()
            )));
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(io_err(out))?
            .next()
            .is_some();
        if non_empty && !opts.overwrite {
            return Err(PrepareError::OutNotEmpty(out.clone()));
        }
    }
    let found = [sources::collect(&opts.a)?, sources::collect(&opts.b)?];
    let created_out = !out.exists();
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let staging = out.join(format!(".prepare-staging-{}", std::process::id()));
    let result = build_in(opts, &staging, found, start);
    // The staging folder is ours alone; whatever is left in it goes.
    if staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    if result.as_ref().map(|r| !r.installed).unwrap_or(true) && created_out {
        let _ = std::fs::remove_dir(out); // only if still empty
    }
    result
}

/// Read, dedup, split and place everything in `staging`, then install it into `opts.out`
/// (unless `strict` and something was skipped).
fn build_in(
    opts: &PrepareOptions,
    staging: &Path,
    found: [sources::Found; 2],
    start: Instant,
) -> Result<PrepareReport, PrepareError> {
    let ReadAll {
        pictures,
        files,
        mut skipped,
        ignored,
        mut dropped_non_rgb,
        videos,
    } = read_all(opts, staging, found)?;

    let splits: Vec<DomainSplit> = [Domain::A, Domain::B]
        .into_iter()
        .map(|d| {
            dedup_and_split(
                opts,
                d,
                &pictures[d.index()],
                files[d.index()],
                std::mem::take(&mut dropped_non_rgb[d.index()]),
            )
        })
        .collect();
    for d in [Domain::A, Domain::B] {
        let r = &splits[d.index()].report;
        if r.train + r.test == 0 {
            return Err(empty_domain(d, &skipped));
        }
    }
    let cross_domain = cross_domain(&pictures, &splits, opts.near_threshold);
    let manifest = place_pictures(staging, &pictures, &splits, opts.format)?;

    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut report = PrepareReport {
        out: opts.out.clone(),
        installed: false,
        replaced: None,
        settings: options::settings(opts),
        domains: splits.into_iter().map(|s| s.report).collect(),
        skipped,
        ignored,
        videos,
        cross_domain,
        elapsed_s: 0.0,
    };
    report.elapsed_s = start.elapsed().as_secs_f64();
    if opts.strict && !report.skipped.is_empty() {
        return Ok(report); // nothing installed: the caller tells the user why
    }
    report.installed = true;
    report.replaced = replaced_dir_if_needed(&opts.out);
    write_records(
        staging,
        &manifest,
        &crate::report::prepare_markdown(&report),
    )?;
    install(staging, &opts.out, report.replaced.as_deref())?;
    Ok(report)
}

/// The error for a domain left without pictures, naming the first skipped inputs.
fn empty_domain(d: Domain, skipped: &[Skip]) -> PrepareError {
    let reasons: Vec<String> = skipped
        .iter()
        .take(5)
        .map(|s| format!("\n  {}: {}", s.path.display(), s.reason))
        .collect();
    let details = if reasons.is_empty() {
        " (its sources hold no image or video)".to_string()
    } else {
        format!(
            " ({} input(s) skipped, first ones:{})",
            skipped.len(),
            reasons.concat()
        )
    };
    PrepareError::EmptyDomain {
        domain: format!("{d:?}"),
        details,
    }
}
