//! Loss curves as an inline SVG: log scale, smoothed, one colour per loss, with a legend.
//!
//! `losses.jsonl` has one JSON object per iteration: `iter`, `epoch`, `lr` and the named losses
//! as top-level numbers (the set of names depends on the model). Every numeric key other than
//! those three is a curve. Long logs are read cheaply: at most [`MAX_PARSED`] evenly spaced
//! lines are parsed, and each curve is averaged into at most [`MAX_POINTS`] bins, then smoothed.

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use super::escape;

/// Lines of the log parsed at most (evenly spaced through it).
pub const MAX_PARSED: usize = 20_000;
/// Points drawn per curve at most.
pub const MAX_POINTS: usize = 300;

/// One named curve: (iteration, value) pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The loss's key in `losses.jsonl`.
    pub name: String,
    /// Points in iteration order.
    pub points: Vec<(f64, f64)>,
    /// The loss's value in the newest line read.
    pub last: f64,
}

/// The curves of a loss log, binned and smoothed; empty when the file is absent or empty.
pub fn read_loss_series(path: &Path) -> Vec<Series> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let stride = lines.len().div_ceil(MAX_PARSED).max(1);
    let mut raw: Vec<Series> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // The last line is always read, so the legend shows the newest values.
    let picked = (0..lines.len())
        .step_by(stride)
        .chain((lines.len() % stride != 1 && stride > 1).then_some(lines.len() - 1));
    for i in picked {
        let Ok(obj) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(lines[i])
        else {
            continue;
        };
        let Some(iter) = obj.get("iter").and_then(|v| v.as_f64()) else {
            continue;
        };
        for (key, value) in &obj {
            if matches!(key.as_str(), "iter" | "epoch" | "lr") {
                continue;
            }
            let Some(v) = value.as_f64() else { continue };
            let at = *index.entry(key.clone()).or_insert_with(|| {
                raw.push(Series {
                    name: key.clone(),
                    points: Vec::new(),
                    last: f64::NAN,
                });
                raw.len() - 1
            });
            raw[at].points.push((iter, v));
            raw[at].last = v;
        }
    }
    raw.into_iter().map(smooth).collect()
}

/// Average into at most [`MAX_POINTS`] bins, then a centred moving average over about 2% of
/// the run; non-finite values are left out.
fn smooth(s: Series) -> Series {
    let finite: Vec<(f64, f64)> = s.points.into_iter().filter(|p| p.1.is_finite()).collect();
    let chunk = finite.len().div_ceil(MAX_POINTS).max(1);
    let binned: Vec<(f64, f64)> = finite
        .chunks(chunk)
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect();
    let half = (finite.len() / 50 / chunk) / 2;
    let points = (0..binned.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(binned.len()));
            let y = binned[lo..hi].iter().map(|p| p.1).sum::<f64>() / (hi - lo) as f64;
            (binned[i].0, y)
        })
        .collect();
    Series {
        name: s.name,
        points,
        last: s.last,
    }
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 380.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 42.0;

/// Round-ish tick values (1, 2, 5 x 10^k) covering `[lo, hi]`, about `n` of them.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e4 || v.abs() < 1e-2 {
        format!("{v:.0e}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// The curves as an `<svg>` element (log-scale y axis; values <= 0 cannot be drawn on it and
/// are left out). Clicking a legend entry hides or shows its curve (see [`TOGGLE_SCRIPT`]).
pub fn loss_svg(series: &[Series]) -> String {
    let positive = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.1 > 0.0)
    };
    if positive().next().is_none() {
        return "<p class=\"muted\">No losses logged yet.</p>".to_string();
    }
    let x_lo = positive().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_hi = positive()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x_lo + 1.0);
    let y_lo = positive()
        .map(|p| p.1.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let y_hi = positive()
        .map(|p| p.1.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil()
        .max(y_lo + 1.0);
    let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * pw;
    let sy = |y: f64| TOP + (y_hi - y.log10()) / (y_hi - y_lo) * ph;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg id=\"loss-plot\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-size=\"12\" role=\"img\" aria-label=\"loss curves\">"
    );
    // Grid and y labels: every decade, with 2 and 5 when the range is narrow.
    let decades = (y_hi - y_lo) as i32;
    for d in (y_lo as i32)..=(y_hi as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(d);
            if v.log10() > y_hi + 1e-9 || (m != 1.0 && decades > 2) {
                continue;
            }
            let y = sy(v);
            let stroke = if m == 1.0 { "#ccc" } else { "#eee" };
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                label(v)
            );
        }
    }
    for t in nice_ticks(x_lo, x_hi, 6) {
        let x = sx(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            TOP + ph,
            TOP + ph + 16.0,
            label(t)
        );
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">iteration</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\" transform=\"rotate(-90 14 {:.1})\">loss (log scale, smoothed)</text>",
        LEFT + pw / 2.0,
        HEIGHT - 6.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let dash = if i >= PALETTE.len() {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.1 > 0.0)
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let name = escape(&s.name);
        let _ = writeln!(
            svg,
            "<g class=\"series\" data-series=\"{i}\"><title>{name}</title>"
        );
        if pts.len() == 1 {
            let (x, y) = pts[0].split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{colour}\"/>"
            );
        } else if !pts.is_empty() {
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.6\"{dash} points=\"{}\"/>",
                pts.join(" ")
            );
        }
        let ly = TOP + 8.0 + 18.0 * i as f64;
        let lx = LEFT + pw + 12.0;
        let _ = writeln!(
            svg,
            "</g><g class=\"legend\" data-series=\"{i}\" style=\"cursor:pointer\">\
             <line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"3\"{dash}/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#222\">{name} <tspan fill=\"#777\">{}</tspan></text></g>",
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            format_last(s.last)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn format_last(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        format!("{v}")
    }
}

/// Legend clicks toggle a curve (a few lines, no library).
pub const TOGGLE_SCRIPT: &str = "<script>
document.querySelectorAll('#loss-plot .legend').forEach(function (l) {
  l.addEventListener('click', function () {
    var g = document.querySelector('#loss-plot .series[data-series=\"' + l.dataset.series + '\"]');
    var hidden = g.style.display === 'none';
    g.style.display = hidden ? '' : 'none';
    l.style.opacity = hidden ? 1 : 0.35;
  });
});
</script>";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn write_log(path: &Path, n: usize) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for i in 1..=n {
            let decay = 1.0 / (1.0 + i as f64 / 1000.0);
            writeln!(
                f,
                "{{\"iter\":{i},\"epoch\":{},\"lr\":0.0002,\"G_A\":{},\"D_A\":{},\"cycle_A\":{},\"note\":\"x\"}}",
                i / 1000,
                0.9 * decay,
                0.25,
                2.0 * decay + if i % 2 == 0 { 0.5 } else { -0.5 } * decay
            )
            .unwrap();
        }
    }

    #[test]
    fn every_numeric_key_but_the_schedule_is_a_curve_and_long_logs_are_cheap() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("losses.jsonl");
        write_log(&path, 100_000);
        let start = std::time::Instant::now();
        let series = read_loss_series(&path);
        let svg = loss_svg(&series);
        let took = start.elapsed();
        assert!(took.as_secs_f64() < 0.5, "{took:?}");
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        for want in ["G_A", "D_A", "cycle_A"] {
            assert!(names.contains(&want), "{names:?}");
            assert!(svg.contains(want));
        }
        for s in &series {
            assert!(s.points.len() <= MAX_POINTS && s.points.len() > 100);
            // The newest value is shown, from the last line.
            assert!(s.points.last().unwrap().0 > 99_000.0);
        }
        // The alternating +-0.5 noise on cycle_A is smoothed away.
        let cycle = series.iter().find(|s| s.name == "cycle_A").unwrap();
        let ys: Vec<f64> = cycle.points.iter().map(|p| p.1).collect();
        let wiggle: f64 = ys.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
        let fall = ys[0] - ys[ys.len() - 1];
        assert!(
            fall > 1.0 && wiggle < 1.1 * fall,
            "wiggle {wiggle} vs fall {fall}"
        );
        assert_eq!(svg.matches("<polyline").count(), 3);
    }

    #[test]
    fn tiny_and_missing_logs_still_render() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("losses.jsonl");
        assert!(read_loss_series(&path).is_empty());
        assert!(loss_svg(&[]).contains("No losses"));
        write_log(&path, 1);
        let series = read_loss_series(&path);
        assert_eq!(series.len(), 3);
        let svg = loss_svg(&series);
        assert!(svg.contains("<circle"), "{svg}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(
            nice_ticks(1.0, 4.0, 6),
            vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
        );
    }
}
