//! SVG charts drawn with plotters into a `String` (no files, no fonts, no network).
//!
//! A [`Chart`] is a set of labelled series over a categorical x axis (the distinct x values
//! evenly spaced, e.g. streams 10, 40, 200). Every point may carry a 95 % interval (drawn as an
//! error bar) and a mark (failed, refused, generator- or sink-bound: drawn hollow with a short
//! red note). Series that land on the same value stay visible: each has its own marker shape and
//! line dash, and is shifted a few pixels sideways within its category. The y axis turns
//! logarithmic when the values span more than two decades. A chart with no data renders as a
//! sentence saying so.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue, ValueFormatter};
use plotters::prelude::*;

/// One point of a series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Datum {
    pub x: f64,
    pub y: f64,
    /// 95 % interval of `y`, if known.
    pub interval: Option<(f64, f64)>,
    /// A short note shown in red next to a hollow marker (`failed`, `ENOBUFS @21`,
    /// `gen-bound`); `None` for a plain valid point.
    pub mark: Option<String>,
    /// Drawn but not joined by the series' line (failed or refused points at y = 0).
    pub detached: bool,
    /// Drawn hollow without a note (a point without a verdict on a chart that does not explain
    /// why).
    pub hollow: bool,
}

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    pub data: Vec<Datum>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Start the y axis at 0 (linear scale only).
    pub from_zero: bool,
    /// A sentence under the chart (what its marks mean), empty for none.
    pub note: String,
    /// Names of the x categories when they are not numbers: category `i` is drawn at x = `i`
    /// and labelled `x_names[i]` (empty: the x values are their own labels).
    pub x_names: Vec<String>,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 400;
/// Room right of the plot for the legend (outside it, so it never hides a point).
const LEGEND_PX: u32 = 200;
/// Pixels between neighbouring series within one category.
const DODGE_PX: i32 = 5;
/// A y axis spanning more decades than this is drawn logarithmic.
const LOG_SPAN: f64 = 100.0;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(127, 127, 127),
];

/// Marker shapes, one per series (cycled).
#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
}

const SHAPES: [Shape; 4] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Diamond,
];

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), String>;

impl Chart {
    /// True when no series has a point.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(|s| s.data.is_empty())
    }

    /// The chart as an inline `<svg>` element, or a `<p class="nodata">` when it has no data.
    pub fn to_html(&self) -> String {
        if self.is_empty() {
            return format!(
                "<p class=\"nodata\">{}: no data in these results (the scenario did not measure it, or every point failed).</p>",
                super::escape(&self.title)
            );
        }
        match self.render_svg() {
            Ok(svg) if self.note.is_empty() => svg,
            Ok(svg) => format!(
                "{svg}<figcaption>{}</figcaption>",
                super::escape(&self.note)
            ),
            Err(err) => format!(
                "<p class=\"nodata\">{}: chart could not be drawn ({}).</p>",
                super::escape(&self.title),
                super::escape(&err)
            ),
        }
    }

    /// The label of x value `x`: its name, or the number.
    fn x_label_of(&self, x: f64) -> String {
        let named = (x >= 0.0 && x.fract() == 0.0)
            .then(|| self.x_names.get(x as usize))
            .flatten();
        named.cloned().unwrap_or_else(|| format_number(x))
    }

    /// The distinct x values, ascending.
    fn x_values(&self) -> Vec<f64> {
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.data.iter().map(|d| d.x))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs
    }

    /// (lowest, highest) y including the intervals.
    fn y_extent(&self) -> (f64, f64) {
        self.series
            .iter()
            .flat_map(|s| s.data.iter())
            .flat_map(|d| {
                let (lo, hi) = d.interval.unwrap_or((d.y, d.y));
                [d.y, lo, hi]
            })
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
                (lo.min(y), hi.max(y))
            })
    }

    /// True when the positive values span more than [`LOG_SPAN`].
    fn wants_log(&self) -> bool {
        let positive: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.data.iter())
            .filter(|d| d.mark.is_none() && d.y > 0.0)
            .map(|d| d.y)
            .collect();
        let lo = positive.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = positive.iter().copied().fold(0.0, f64::max);
        positive.len() > 1 && hi / lo > LOG_SPAN
    }

    fn render_svg(&self) -> Result<String, String> {
        let (mut y_min, mut y_max) = self.y_extent();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            if self.wants_log() {
                let floor = self
                    .series
                    .iter()
                    .flat_map(|s| s.data.iter())
                    .filter(|d| d.y > 0.0)
                    .map(|d| d.interval.map_or(d.y, |(lo, _)| lo.max(d.y / 10.0)))
                    .fold(f64::INFINITY, f64::min);
                self.draw(&root, (floor / 2.0..y_max * 2.0).log_scale(), true)?;
            } else {
                if self.from_zero {
                    y_min = y_min.min(0.0);
                }
                if y_max <= y_min {
                    y_max = y_min + 1.0;
                }
                let span = y_max - y_min;
                // Room above the highest point for the marks' notes.
                let marked = self
                    .series
                    .iter()
                    .flat_map(|s| &s.data)
                    .any(|d| d.mark.is_some());
                let top = if marked { 0.25 } else { 0.08 };
                self.draw(&root, (y_min - span * 0.02)..(y_max + span * top), false)?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }

    fn draw<Y>(&self, root: &Area<'_>, y_range: Y, log: bool) -> Drawn
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let xs = self.x_values();
        // A single x value sits in the middle of three segments, not at the left of two.
        let shift = u32::from(xs.len() == 1);
        let segments = (xs.len() as u32).saturating_sub(1).max(1) + shift;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 16))
            .margin(12)
            .margin_right(LEGEND_PX)
            .x_label_area_size(42)
            .y_label_area_size(72)
            .build_cartesian_2d((0u32..segments).into_segmented(), y_range)
            .map_err(|e| e.to_string())?;
        let label_of = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => i
                .checked_sub(shift)
                .and_then(|i| xs.get(i as usize))
                .map(|x| self.x_label_of(*x))
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        };
        let y_desc = if log {
            format!("{} (log scale)", self.y_label)
        } else {
            self.y_label.clone()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(segments as usize + 1)
            .x_label_formatter(&label_of)
            .y_label_formatter(&|y| format_number(*y))
            .x_desc(self.x_label.as_str())
            .y_desc(y_desc)
            .draw()
            .map_err(|e| e.to_string())?;
        let n = self.series.len() as i32;
        let (xs_px, ys_px) = chart.plotting_area().get_pixel_range();
        for (i, series) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let shape = SHAPES[i % SHAPES.len()];
            let dodge = (2 * i as i32 - (n - 1)) * DODGE_PX / 2;
            let at = |d: &Datum, y: f64| {
                let idx = xs.iter().position(|x| *x == d.x).unwrap_or(0) as u32 + shift;
                let (px, py) = chart.backend_coord(&(SegmentValue::CenterOf(idx), y));
                // Error bars wider than the axis stop at its ends.
                (px + dodge, py.clamp(ys_px.start, ys_px.end))
            };
            draw_series(root, series, (color, shape, i), &at)?;
        }
        draw_legend(root, &self.series, (xs_px.end + 12, ys_px.start + 8))
    }
}

/// The legend, right of the plot: per series a line sample (dashed like the series), its marker
/// and its label.
fn draw_legend(root: &Area<'_>, series: &[Series], at: (i32, i32)) -> Drawn {
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let shape = SHAPES[i % SHAPES.len()];
        let y = at.1 + 16 * i as i32;
        draw_line(root, &[(at.0, y), (at.0 + 24, y)], color, i % 2 == 1)?;
        draw_marker(root, (at.0 + 12, y), color, shape, false)?;
        let font = ("sans-serif", 12).into_font().color(&BLACK);
        root.draw(&Text::new(s.label.clone(), (at.0 + 30, y - 6), font))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One series in pixel space: its line (dashed for every other series), error bars, markers and
/// notes.
fn draw_series(
    root: &Area<'_>,
    series: &Series,
    (color, shape, index): (RGBColor, Shape, usize),
    at: &dyn Fn(&Datum, f64) -> (i32, i32),
) -> Drawn {
    let mut joined: Vec<&Datum> = series.data.iter().filter(|d| !d.detached).collect();
    joined.sort_by(|a, b| a.x.total_cmp(&b.x));
    let line: Vec<(i32, i32)> = joined.iter().map(|d| at(d, d.y)).collect();
    draw_line(root, &line, color, index % 2 == 1)?;
    for d in &series.data {
        let p = at(d, d.y);
        if let Some((lo, hi)) = d.interval {
            let (top, bottom) = (at(d, hi), at(d, lo));
            let style = color.stroke_width(1);
            let cap = |y: i32| PathElement::new(vec![(p.0 - 4, y), (p.0 + 4, y)], style);
            root.draw(&PathElement::new(
                vec![(p.0, top.1), (p.0, bottom.1)],
                style,
            ))
            .and_then(|()| root.draw(&cap(top.1)))
            .and_then(|()| root.draw(&cap(bottom.1)))
            .map_err(|e| e.to_string())?;
        }
        draw_marker(root, p, color, shape, d.hollow || d.mark.is_some())?;
        if let Some(note) = &d.mark {
            // Notes of neighbouring series at one point are stacked, not printed over each other.
            let font = ("sans-serif", 11).into_font().color(&RED);
            let lift = 12 + 12 * (index % 4) as i32;
            root.draw(&Text::new(note.clone(), (p.0 + 6, p.1 - lift), font))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// A polyline, dashed when `dashed` (drawn as short segments: plotters' SVG has no dash style).
fn draw_line(root: &Area<'_>, points: &[(i32, i32)], color: RGBColor, dashed: bool) -> Drawn {
    let style = color.stroke_width(2);
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if !dashed {
            root.draw(&PathElement::new(vec![a, b], style))
                .map_err(|e| e.to_string())?;
            continue;
        }
        let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
        let length = (dx * dx + dy * dy).sqrt().max(1.0);
        let steps = (length / 6.0).ceil() as i32;
        for s in (0..steps).step_by(2) {
            let t0 = f64::from(s) / f64::from(steps);
            let t1 = (f64::from(s) + 1.0) / f64::from(steps);
            let p = |t: f64| (a.0 + (dx * t).round() as i32, a.1 + (dy * t).round() as i32);
            root.draw(&PathElement::new(vec![p(t0), p(t1)], style))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn draw_marker(
    root: &Area<'_>,
    p: (i32, i32),
    color: RGBColor,
    shape: Shape,
    hollow: bool,
) -> Drawn {
    let style = if hollow {
        color.stroke_width(2)
    } else {
        color.filled()
    };
    let r = 4;
    let result = match shape {
        Shape::Circle => root.draw(&Circle::new(p, r, style)),
        Shape::Square => root.draw(&Rectangle::new(
            [(p.0 - r, p.1 - r), (p.0 + r, p.1 + r)],
            style,
        )),
        Shape::Triangle => root.draw(&Polygon::new(
            vec![(p.0, p.1 - r - 1), (p.0 - r, p.1 + r), (p.0 + r, p.1 + r)],
            style,
        )),
        Shape::Diamond => root.draw(&Polygon::new(
            vec![
                (p.0, p.1 - r - 1),
                (p.0 + r + 1, p.1),
                (p.0, p.1 + r + 1),
                (p.0 - r - 1, p.1),
            ],
            style,
        )),
    };
    result.map_err(|e| e.to_string())
}

/// Short human form: 12, 1.5, 0.012, 12.3k, 1.2M.
pub fn format_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else if v == 0.0 {
        "0".to_owned()
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datum(x: f64, y: f64) -> Datum {
        Datum {
            x,
            y,
            ..Datum::default()
        }
    }

    fn chart(series: Vec<Series>) -> Chart {
        Chart {
            title: "Delivered".into(),
            x_label: "streams".into(),
            y_label: "%".into(),
            series,
            from_zero: true,
            note: String::new(),
            x_names: Vec::new(),
        }
    }

    /// The trimmed contents of every `<text>` element.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("</text>")
            .filter_map(|chunk| chunk.rsplit('>').next())
            .map(|t| t.trim().to_owned())
            .collect()
    }

    #[test]
    fn a_chart_with_data_is_an_svg_with_its_labels_marks_and_error_bars() {
        let c = chart(vec![Series {
            label: "relay/pool".into(),
            data: vec![
                Datum {
                    interval: Some((99.0, 100.0)),
                    ..datum(10.0, 99.5)
                },
                datum(40.0, 99.0),
                Datum {
                    mark: Some("ENOBUFS @21".into()),
                    detached: true,
                    ..datum(200.0, 0.0)
                },
            ],
        }]);
        let html = c.to_html();
        assert!(html.starts_with("<svg"), "{}", &html[..80.min(html.len())]);
        let texts = svg_texts(&html);
        for label in ["10", "40", "200", "relay/pool", "ENOBUFS @21"] {
            assert!(texts.iter().any(|t| t == label), "{label}: {texts:?}");
        }
    }

    #[test]
    fn series_on_the_same_value_are_drawn_apart() {
        let same = |label: &str| Series {
            label: label.into(),
            data: vec![datum(10.0, 100.0), datum(40.0, 100.0)],
        };
        let html = chart(vec![same("relay/pool"), same("kernel"), same("direct")]).to_html();
        // Each series has its own marker shape: circles, rects and polygons all appear.
        assert!(html.contains("<circle") && html.contains("<rect") && html.contains("<polygon"));
        for label in ["relay/pool", "kernel", "direct"] {
            assert!(svg_texts(&html).iter().any(|t| t == label), "{label}");
        }
    }

    #[test]
    fn values_spanning_decades_get_a_log_axis() {
        let c = Chart {
            y_label: "p99 latency (us)".into(),
            from_zero: false,
            ..chart(vec![Series {
                label: "socat".into(),
                data: vec![datum(10.0, 50.0), datum(1000.0, 120_000.0)],
            }])
        };
        assert!(c.wants_log());
        let html = c.to_html();
        assert!(
            html.contains("log scale"),
            "{}",
            &html[..200.min(html.len())]
        );
        let flat = chart(vec![Series {
            label: "x".into(),
            data: vec![datum(1.0, 90.0), datum(2.0, 100.0)],
        }]);
        assert!(!flat.wants_log());
    }

    #[test]
    fn a_single_x_value_still_draws() {
        let html = chart(vec![Series {
            label: "direct".into(),
            data: vec![datum(5.0, 100.0)],
        }])
        .to_html();
        assert!(html.starts_with("<svg"), "{html}");
        assert!(svg_texts(&html).iter().any(|t| t == "5"), "x label 5");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let html = chart(vec![Series::default()]).to_html();
        assert!(!html.contains("<svg"));
        assert!(html.contains("no data"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(format_number(350_000.0), "350k");
        assert_eq!(format_number(2_500_000.0), "2.5M");
        assert_eq!(format_number(99.95), "99.95");
        assert_eq!(format_number(1.5), "1.5");
        assert_eq!(format_number(40.0), "40");
        assert_eq!(format_number(0.0125), "0.013");
    }
}
