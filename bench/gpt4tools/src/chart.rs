//! Charts, written as SVG and PNG: the accuracy-versus-latency chart of a
//! report, like Figure 1 of the LoRA-Gen paper (one point per mode), and
//! the training curves of runs (loss, and validation SR with its interval).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::paired::Interval;
use crate::report::Report;

/// TrueType fonts tried for the PNG's text, most common first.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Draws one chart into `stem.svg` and `stem.png`, through the same code,
/// making the directory they go in if need be.
macro_rules! svg_and_png {
    ($stem:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        register_font()?;
        if let Some(dir) = $stem.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        $draw(
            SVGBackend::new(&$stem.with_extension("svg"), $size).into_drawing_area(),
            $($arg),*
        )?;
        $draw(
            BitMapBackend::new(&$stem.with_extension("png"), $size).into_drawing_area(),
            $($arg),*
        )
    }};
}

/// Writes `stem.svg` and `stem.png`. Text layout needs a TrueType font on
/// the machine, for both formats; without one the error says what to install.
pub fn write_chart(report: &Report, stem: &Path, title: &str) -> Result<()> {
    let points: Vec<Point> = report
        .rows
        .iter()
        .map(|r| Point {
            label: r.mode.to_string(),
            p50_ms: r.p50_ms,
            average: r.scores.average,
        })
        .collect();
    write_points(&points, stem, title)
}

/// One learner on the accuracy-versus-latency chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub p50_ms: f64,
    /// The Average score, %.
    pub average: f64,
}

/// Writes the accuracy-versus-latency chart of `points` as `stem.svg`
/// and `stem.png`.
pub fn write_points(points: &[Point], stem: &Path, title: &str) -> Result<()> {
    svg_and_png!(stem, (800, 520), draw(points, title))
}

/// One training run's curves: (step, training loss) and (step, validation
/// success rate in percent with its 95% interval).
#[derive(Debug, Clone, Default)]
pub struct Curve {
    pub name: String,
    pub loss: Vec<(f64, f64)>,
    pub val: Vec<(f64, Interval)>,
}

/// Writes the training curves of `curves` as `stem.svg` and `stem.png`:
/// loss above, validation SR with its interval below, one colour per run.
pub fn write_curves(curves: &[Curve], stem: &Path, title: &str) -> Result<()> {
    svg_and_png!(stem, (900, 760), draw_curves(curves, title))
}

fn draw_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    curves: &[Curve],
    title: &str,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Chart(e.to_string());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(360);
    let max_step = curves
        .iter()
        .flat_map(|c| c.loss.iter().map(|p| p.0).chain(c.val.iter().map(|p| p.0)))
        .fold(1.0, f64::max);
    let max_loss = curves
        .iter()
        .flat_map(|c| c.loss.iter().map(|p| p.1))
        .fold(0.1, f64::max)
        * 1.05;
    let mut loss = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, 0.0..max_loss)
        .map_err(|e| err(&e))?;
    loss.configure_mesh()
        .x_desc("optimiser step")
        .y_desc("training loss (LM)")
        .draw()
        .map_err(|e| err(&e))?;
    let mut sr = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_step, 0.0..100.0)
        .map_err(|e| err(&e))?;
    sr.configure_mesh()
        .x_desc("optimiser step")
        .y_desc("validation SR (%), 95% interval")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, curve) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        loss.draw_series(LineSeries::new(
            curve.loss.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(curve.name.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        sr.draw_series(LineSeries::new(
            curve.val.iter().map(|(s, i)| (*s, i.mean)),
            color.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label(curve.name.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        sr.draw_series(
            curve
                .val
                .iter()
                .map(|(s, i)| ErrorBar::new_vertical(*s, i.lo, i.mean, i.hi, color.filled(), 8)),
        )
        .map_err(|e| err(&e))?;
    }
    for mut chart_labels in [loss.configure_series_labels(), sr.configure_series_labels()] {
        chart_labels
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn register_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let Some(bytes) = FONTS.iter().find_map(|p| std::fs::read(p).ok()) else {
            return false;
        };
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Chart(
            "no usable TrueType font for the chart's text (install fonts-dejavu-core)".into(),
        ))
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    points: &[Point],
    title: &str,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Chart(e.to_string());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max_ms = points.iter().map(|p| p.p50_ms).fold(1.0, f64::max) * 1.25;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_ms, 0.0..100.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("p50 latency per item (ms)")
        .y_desc("Average score (%)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, p) in points.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let point = (p.p50_ms, p.average);
        chart
            .draw_series(std::iter::once(Circle::new(point, 7, color.filled())))
            .map_err(|e| err(&e))?
            .label(format!(
                "{} ({:.1}%, {:.0} ms)",
                p.label, p.average, p.p50_ms
            ))
            .legend(move |(x, y)| Circle::new((x, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ItemScores;
    use crate::record::Record;
    use loragen_protocol::Mode;

    #[test]
    fn svg_and_png_are_written() {
        // `make test` installs the font, so its absence is a failure here.
        assert!(
            FONTS.iter().any(|p| Path::new(p).exists()),
            "no chart font found (looked for {FONTS:?}); install the Debian package fonts-dejavu-core (scripts/install-deps.sh does)"
        );
        let record = |mode, ms| Record {
            id: "1".into(),
            mode,
            prediction: String::new(),
            scores: ItemScores {
                thought_acc: 1.0,
                action_acc: 1.0,
                action_args_acc: 0.5,
                acc: 1.0,
                iou: 0.9,
            },
            prompt_tokens: 100,
            reused_tokens: 0,
            prefill_ms: ms,
            decode_ms: 10.0,
            decode_tokens: 5,
            peak_rss_mib: 1.0,
            adapter_ms: None,
            selector_ms: None,
            none_margin: None,
        };
        let report = Report::from_records(
            &[
                record(Mode::InContext, 900.0),
                record(Mode::Compiled, 200.0),
            ],
            &Mode::ALL,
        );
        let dir = tempfile::tempdir().unwrap();
        write_chart(&report, &dir.path().join("c"), "test").unwrap();
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
        assert!(svg.contains("in-context") && svg.contains("compiled"));
        let png = std::fs::read(dir.path().join("c.png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }

    #[test]
    fn curves_are_written_with_every_run_named() {
        let curve = |name: &str, k: f64| Curve {
            name: name.into(),
            loss: (0..100)
                .map(|s| (f64::from(s), k / (1.0 + f64::from(s))))
                .collect(),
            val: [0.0, 50.0, 99.0]
                .iter()
                .map(|&s| {
                    let mean = s / 2.0;
                    (
                        s,
                        Interval {
                            mean,
                            lo: mean - 5.0,
                            hi: mean + 5.0,
                        },
                    )
                })
                .collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("new").join("curves");
        write_curves(&[curve("generator", 2.0), curve("lora", 3.0)], &stem, "t").unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(svg.contains("generator") && svg.contains("lora"));
        assert!(svg.contains("validation SR"));
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
}
