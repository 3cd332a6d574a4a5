//! `RUN_DIR/index.html`: where a training run stands, in one page.
//!
//! Built from the run folder's files (`config.toml`, `losses.jsonl`, `samples/*.png`,
//! `events.jsonl`, `checkpoints/iter-*`, `eval.jsonl`) and a [`RunStatus`] the training loop
//! passes. Cheap enough to rewrite at every epoch end and checkpoint: the loss log is sampled
//! and binned (see [`super::plot`]), and only the newest sample grids are shown.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::plot::{TOGGLE_SCRIPT, loss_svg, read_loss_series};
use super::{escape, page, relative_path, url_of};
use crate::checkpoint;
use crate::eval::model_eval::{EvalRecord, read_history, utc_now};

/// Sample grids shown at most (newest first); older ones are counted.
pub const MAX_SAMPLES: usize = 24;

/// Where training stands, as the training loop knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The model, e.g. `CycleGAN, ResNet-9 generator (ngf 64), 70x70 PatchGAN`.
    pub model: String,
    /// The compute device, e.g. `cpu`.
    pub device: String,
    /// The dataset folder.
    pub dataset: String,
    /// Training images of domain A.
    pub images_a: usize,
    /// Training images of domain B.
    pub images_b: usize,
    /// Iterations done.
    pub iteration: u64,
    /// Iterations the run will do in all.
    pub total_iterations: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Epochs in all.
    pub total_epochs: usize,
    /// Current learning rate.
    pub lr: f64,
    /// Seconds of training so far.
    pub elapsed_s: f64,
    /// Recent speed.
    pub iters_per_s: f64,
}

/// `h:mm:ss`.
fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".into();
    }
    let s = s.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Write `run_dir/index.html` (atomically).
pub fn write_run_page(run_dir: &Path, status: &RunStatus) -> Result<()> {
    let name = run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string());
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<h1>Run {}</h1>\n<p class=\"muted\">page written {}</p>",
        escape(&name),
        utc_now()
    );
    body.push_str(&summary(status));
    body.push_str("<h2>Losses</h2>\n");
    body.push_str(&loss_svg(&read_loss_series(&run_dir.join("losses.jsonl"))));
    body.push_str(TOGGLE_SCRIPT);
    body.push_str(&evaluations(&read_history(run_dir)));
    body.push_str(&samples(run_dir));
    body.push_str(&events(run_dir));
    body.push_str(&checkpoints(run_dir));
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap_or_default();
    let _ = writeln!(
        body,
        "<h2>Configuration</h2>\n<details><summary>config.toml</summary><pre>{}</pre></details>",
        escape(&config)
    );
    Ok(cyclegan_data::atomic::write_atomic(
        &run_dir.join("index.html"),
        page(&format!("cyclegan run {name}"), &body).as_bytes(),
    )?)
}

fn summary(s: &RunStatus) -> String {
    let pct = if s.total_iterations > 0 {
        100.0 * s.iteration as f64 / s.total_iterations as f64
    } else {
        0.0
    };
    let remaining = s.total_iterations.saturating_sub(s.iteration) as f64;
    let eta = if s.iters_per_s > 0.0 {
        duration(remaining / s.iters_per_s)
    } else {
        "?".into()
    };
    let rows = [
        ("model", escape(&s.model)),
        ("device", escape(&s.device)),
        (
            "dataset",
            format!(
                "{} ({} A, {} B training images)",
                escape(&s.dataset),
                s.images_a,
                s.images_b
            ),
        ),
        (
            "iteration",
            format!("{} of {} ({pct:.1}%)", s.iteration, s.total_iterations),
        ),
        (
            "epoch",
            format!("{} of {}", s.epoch + 1, s.total_epochs.max(s.epoch + 1)),
        ),
        ("learning rate", format!("{:.3e}", s.lr)),
        ("speed", format!("{:.2} iterations/s", s.iters_per_s)),
        ("elapsed", duration(s.elapsed_s)),
        ("remaining (estimate)", eta),
    ];
    let mut out = String::from("<table class=\"summary\">\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    out.push_str("</table>\n");
    out
}

fn evaluations(history: &[EvalRecord]) -> String {
    let mut out = String::from("<h2>Evaluations</h2>\n");
    if history.is_empty() {
        out.push_str(
            "<p class=\"muted\">None yet: <code>cyclegan eval --model RUN --data DATA</code> adds one.</p>\n",
        );
        return out;
    }
    out.push_str(
        "<table>\n<tr><th>time</th><th>iteration</th><th>FID A&rarr;B</th><th>KID A&rarr;B</th>\
         <th>FID B&rarr;A</th><th>KID B&rarr;A</th></tr>\n",
    );
    for r in history.iter().rev() {
        let cell = |s: &Option<crate::eval::Scores>| match s {
            Some(s) => (
                format!("{:.2}", s.fid),
                format!("{:.4} &plusmn; {:.4}", s.kid.mean, s.kid.std),
            ),
            None => ("&ndash;".into(), "&ndash;".into()),
        };
        let (fa, ka) = cell(&r.a2b);
        let (fb, kb) = cell(&r.b2a);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{fa}</td><td class=\"num\">{ka}</td>\
             <td class=\"num\">{fb}</td><td class=\"num\">{kb}</td></tr>",
            escape(&r.time),
            r.iteration.map_or("&ndash;".to_string(), |i| i.to_string())
        );
    }
    out.push_str("</table>\n");
    out
}

/// PNG files of `dir`, newest first (modification time, then name).
fn newest_pngs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("png")))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.into_iter().map(|(_, p)| p).collect()
}

fn figure(run_dir: &Path, img: &Path, caption: &str) -> String {
    let url = url_of(&relative_path(img, run_dir));
    format!(
        "<figure><a href=\"{url}\"><img src=\"{url}\" alt=\"{c}\"></a><figcaption>{c}</figcaption></figure>\n",
        c = escape(caption)
    )
}

fn samples(run_dir: &Path) -> String {
    let all: Vec<PathBuf> = newest_pngs(&run_dir.join("samples"))
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("event_"))
        })
        .collect();
    let mut out = String::from(
        "<h2>Samples</h2>\n<p class=\"muted\">newest first; each grid: real A, fake B, rec A over real B, fake A, rec B</p>\n<div class=\"samples\">\n",
    );
    if all.is_empty() {
        out.push_str("<p class=\"muted\">No sample grids yet.</p>\n");
    }
    for p in all.iter().take(MAX_SAMPLES) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        out.push_str(&figure(run_dir, p, &name));
    }
    if all.len() > MAX_SAMPLES {
        let _ = writeln!(
            out,
            "<p class=\"muted\">{} older grids in samples/</p>",
            all.len() - MAX_SAMPLES
        );
    }
    out.push_str("</div>\n");
    out
}

fn events(run_dir: &Path) -> String {
    let text = std::fs::read_to_string(run_dir.join("events.jsonl")).unwrap_or_default();
    let events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut out = String::from("<h2>Divergence guard events</h2>\n");
    if events.is_empty() {
        out.push_str("<p class=\"muted\">None: training has been stable.</p>\n");
        return out;
    }
    for e in events.iter().rev() {
        let iter = e.get("iter").and_then(|v| v.as_u64()).unwrap_or(0);
        let anomaly = e.get("anomaly").map(|a| a.to_string()).unwrap_or_default();
        let back = match e.get("rolled_back_to").and_then(|v| v.as_u64()) {
            Some(it) => format!("rolled back to the checkpoint of iteration {it}"),
            None => "no rollback".into(),
        };
        let _ = writeln!(
            out,
            "<h3>iteration {iter}</h3>\n<p>{}; {back}</p>",
            escape(&anomaly)
        );
        if let Some(sample) = e.get("sample").and_then(|v| v.as_str()) {
            let p = PathBuf::from(sample);
            let p = if p.is_relative() && run_dir.join(&p).exists() {
                run_dir.join(p)
            } else {
                p
            };
            out.push_str(&figure(run_dir, &p, &format!("iteration {iter}")));
        }
    }
    out
}

fn checkpoints(run_dir: &Path) -> String {
    let list = checkpoint::list(run_dir);
    let mut out = String::from("<h2>Checkpoints</h2>\n");
    if list.is_empty() {
        out.push_str("<p class=\"muted\">None yet.</p>\n");
        return out;
    }
    out.push_str("<table>\n<tr><th>iteration</th><th>folder</th><th>state</th></tr>\n");
    for dir in list {
        let iter = checkpoint::iteration_of(&dir).unwrap_or(0);
        let state = if checkpoint::is_flagged(&dir) {
            "flagged by the divergence guard (never resumed from)"
        } else {
            "good"
        };
        let rel = relative_path(&dir, run_dir);
        let _ = writeln!(
            out,
            "<tr><td class=\"num\">{iter}</td><td>{}</td><td>{state}</td></tr>",
            escape(&rel.display().to_string())
        );
    }
    out.push_str("</table>\n");
    out
}

/// A status read from the run folder alone (for regenerating a page outside training): the
/// configuration and the last line of `losses.jsonl`; speed and elapsed time are unknown (0).
pub fn status_from_run_dir(run_dir: &Path) -> Result<RunStatus> {
    let config_path = run_dir.join("config.toml");
    let text = std::fs::read_to_string(&config_path).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read ({e}); is {} a run folder of `cyclegan train`?",
            config_path.display(),
            run_dir.display()
        )
    })?;
    let config: crate::config::TrainConfig = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a training configuration: {e}",
            config_path.display()
        )
    })?;
    let last: Option<serde_json::Value> = std::fs::read_to_string(run_dir.join("losses.jsonl"))
        .ok()
        .and_then(|t| t.lines().rev().find_map(|l| serde_json::from_str(l).ok()));
    let get = |k: &str| {
        last.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_f64())
    };
    let count = |d: &str| {
        cyclegan_data::imageio::list_images(&config.data_dir.join(d))
            .map(|v| v.len())
            .unwrap_or(0)
    };
    let (images_a, images_b) = (count("trainA"), count("trainB"));
    let per_epoch = images_a.max(images_b).div_ceil(config.batch_size.max(1)) as u64;
    let total_epochs = config.epochs + config.epochs_decay;
    let total = config.max_iters.unwrap_or(per_epoch * total_epochs as u64);
    Ok(RunStatus {
        model: config.describe_networks(),
        device: "unknown (page regenerated outside training)".into(),
        dataset: config.data_dir.display().to_string(),
        images_a,
        images_b,
        iteration: get("iter").unwrap_or(0.0) as u64,
        total_iterations: total,
        epoch: get("epoch").unwrap_or(0.0) as usize,
        total_epochs,
        lr: get("lr").unwrap_or(config.lr),
        elapsed_s: 0.0,
        iters_per_s: 0.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> RunStatus {
        RunStatus {
            model: "tiny <test>".into(),
            device: "cpu".into(),
            dataset: "data".into(),
            images_a: 3,
            images_b: 4,
            iteration: 50,
            total_iterations: 200,
            epoch: 1,
            total_epochs: 4,
            lr: 2e-4,
            elapsed_s: 100.0,
            iters_per_s: 0.5,
        }
    }

    #[test]
    fn page_shows_every_part_of_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        std::fs::write(run.join("config.toml"), "lr = 0.0002\n# <b>\n").unwrap();
        let mut log = String::new();
        for i in 1..=20 {
            log.push_str(&format!(
                "{{\"iter\":{i},\"epoch\":0,\"lr\":0.0002,\"G_A\":{},\"D_B\":0.3}}\n",
                1.0 / i as f64
            ));
        }
        std::fs::write(run.join("losses.jsonl"), log).unwrap();
        std::fs::create_dir_all(run.join("samples")).unwrap();
        for name in ["epoch_0001.png", "epoch_0002.png", "event_00000007.png"] {
            image::RgbImage::new(4, 4)
                .save(run.join("samples").join(name))
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let event = serde_json::json!({"iter": 7, "anomaly": {"NonFinite": {"loss": "G_A"}},
            "sample": run.join("samples/event_00000007.png"), "rolled_back_to": 4});
        std::fs::write(run.join("events.jsonl"), format!("{event}\n")).unwrap();
        std::fs::create_dir_all(run.join("checkpoints/iter-4")).unwrap();
        write_run_page(run, &status()).unwrap();
        let html = std::fs::read_to_string(run.join("index.html")).unwrap();
        assert!(html.contains("tiny &lt;test&gt;"));
        assert!(html.contains("50 of 200 (25.0%)"));
        assert!(html.contains("0:05:00"), "ETA of 150 iterations at 0.5/s");
        assert!(html.contains("<svg id=\"loss-plot\"") && html.contains("D_B"));
        let newest = html.find("samples/epoch_0002.png").unwrap();
        let older = html.find("samples/epoch_0001.png").unwrap();
        assert!(newest < older, "newest sample first");
        assert!(
            html.contains("iteration 7")
                && html.contains("rolled back to the checkpoint of iteration 4")
        );
        assert!(html.contains("src=\"samples/event_00000007.png\""));
        assert!(html.contains("checkpoints/iter-4"));
        assert!(html.contains("# &lt;b&gt;"));
        assert!(!run.join(".index.html.tmp").exists());
    }

    #[test]
    fn an_empty_run_folder_still_gets_a_page() {
        let tmp = tempfile::tempdir().unwrap();
        write_run_page(tmp.path(), &status()).unwrap();
        let html = std::fs::read_to_string(tmp.path().join("index.html")).unwrap();
        assert!(html.contains("No losses logged yet") && html.contains("No sample grids yet"));
    }
}
