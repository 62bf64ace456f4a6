//! SVG charts drawn with plotters into a `String` (no files, no fonts, no network).
//!
//! A [`Chart`] is a set of labelled line series over a categorical x axis (the distinct x values
//! evenly spaced, e.g. streams 10, 40, 200), plus marks for failed or refused points. A chart with
//! no data renders as a sentence saying so.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub label: String,
    /// (x, y) with x one of the chart's x values.
    pub points: Vec<(f64, f64)>,
    /// Points to mark with a cross and a short note (failed point, ENOBUFS, ...), at (x, y).
    pub marks: Vec<(f64, f64, String)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 380;

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

impl Chart {
    /// True when no series has a point or a mark.
    pub fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.points.is_empty() && s.marks.is_empty())
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
            Ok(svg) => svg,
            Err(err) => format!(
                "<p class=\"nodata\">{}: chart could not be drawn ({}).</p>",
                super::escape(&self.title),
                super::escape(&err)
            ),
        }
    }

    fn x_values(&self) -> Vec<f64> {
        let mut xs: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|p| p.0)
                    .chain(s.marks.iter().map(|m| m.0))
            })
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        xs
    }

    fn render_svg(&self) -> Result<String, String> {
        let xs = self.x_values();
        let index =
            |x: f64| SegmentValue::CenterOf(xs.iter().position(|v| *v == x).unwrap_or(0) as u32);
        let ys = self.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.marks.iter().map(|m| m.1))
        });
        let (mut y_min, mut y_max) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
        y_min = y_min.min(0.0);
        if y_max <= y_min {
            y_max = y_min + 1.0;
        }
        // Headroom so the legend (upper right) does not cover the highest lines.
        y_max += (y_max - y_min) * 0.45;

        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(42)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    (0u32..xs.len().saturating_sub(1).max(1) as u32).into_segmented(),
                    y_min..y_max,
                )
                .map_err(|e| e.to_string())?;
            let label_of = |v: &SegmentValue<u32>| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => xs
                    .get(*i as usize)
                    .map(|x| format_number(*x))
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(xs.len())
                .x_label_formatter(&label_of)
                .y_label_formatter(&|y| format_number(*y))
                .x_desc(self.x_label.as_str())
                .y_desc(self.y_label.as_str())
                .draw()
                .map_err(|e| e.to_string())?;
            for (n, series) in self.series.iter().enumerate() {
                let color = PALETTE[n % PALETTE.len()];
                let pts: Vec<(SegmentValue<u32>, f64)> =
                    series.points.iter().map(|p| (index(p.0), p.1)).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(series.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        pts.iter()
                            .map(|p| Circle::new(p.clone(), 3, color.filled())),
                    )
                    .map_err(|e| e.to_string())?;
                for (x, y, note) in &series.marks {
                    let at = (index(*x), *y);
                    chart
                        .draw_series(std::iter::once(Cross::new(
                            at.clone(),
                            6,
                            RED.stroke_width(2),
                        )))
                        .map_err(|e| e.to_string())?;
                    chart
                        .draw_series(std::iter::once(Text::new(
                            note.clone(),
                            at,
                            ("sans-serif", 11).into_font().color(&RED),
                        )))
                        .map_err(|e| e.to_string())?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(|e| e.to_string())?;
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
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

    #[test]
    fn a_chart_with_data_is_an_svg_with_its_labels() {
        let chart = Chart {
            title: "Delivered".into(),
            x_label: "streams".into(),
            y_label: "%".into(),
            series: vec![Series {
                label: "relay/pool".into(),
                points: vec![(10.0, 100.0), (40.0, 99.0)],
                marks: vec![(200.0, 0.0, "ENOBUFS".into())],
            }],
        };
        let html = chart.to_html();
        assert!(html.starts_with("<svg"), "{}", &html[..80.min(html.len())]);
        assert!(html.contains("relay/pool") && html.contains("ENOBUFS"));
        let texts = svg_texts(&html);
        for label in ["10", "40", "200"] {
            assert!(
                texts.iter().any(|t| t == label),
                "x label {label}: {texts:?}"
            );
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
    fn a_single_x_value_still_draws() {
        let chart = Chart {
            title: "One".into(),
            x_label: "streams".into(),
            y_label: "%".into(),
            series: vec![Series {
                label: "direct".into(),
                points: vec![(5.0, 100.0)],
                marks: vec![],
            }],
        };
        let html = chart.to_html();
        assert!(html.starts_with("<svg"), "{html}");
        assert!(svg_texts(&html).iter().any(|t| t == "5"), "x label 5");
    }

    #[test]
    fn an_empty_chart_says_so() {
        let chart = Chart {
            title: "Zero-loss".into(),
            x_label: "fan-out".into(),
            y_label: "pps".into(),
            series: vec![Series::default()],
        };
        let html = chart.to_html();
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
