//! PNG plots without a plotting stack: a confusion-matrix heatmap and a 2-D embedding scatter,
//! drawn on an RGB canvas with an 8×8 bitmap font.
//!
//! Why not plotters: it builds quickly (27 s cold release, measured 2026-12-07) but draws text
//! only with a TrueType font found on the system at run time, which headless CI and compute
//! nodes may not have; the bitmap font needs nothing.

use std::path::Path;

use crate::classification::ConfusionMatrix;
use crate::error::EvalError;

/// Distinguishable colours for up to 10 classes (matplotlib's tab10); more classes cycle.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// An RGB raster.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self { width, height, pixels: vec![255; width * height * 3] }
    }

    fn put(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.pixels[at..at + 3].copy_from_slice(&rgb);
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, rgb: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx as i64, yy as i64, rgb);
            }
        }
    }

    fn disc(&mut self, cx: f64, cy: f64, r: f64, rgb: [u8; 3]) {
        let ri = r.ceil() as i64;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                if (dx * dx + dy * dy) as f64 <= r * r {
                    self.put(cx.round() as i64 + dx, cy.round() as i64 + dy, rgb);
                }
            }
        }
    }

    /// Text in the 8×8 font, `scale` pixels per font pixel; non-ASCII characters show as `?`.
    fn text(&mut self, x: usize, y: usize, s: &str, scale: usize, rgb: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[if ch.is_ascii() { ch as usize } else { b'?' as usize }];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.rect(x + (i * 8 + col) * scale, y + row * scale, scale, scale, rgb);
                    }
                }
            }
        }
    }

    fn save(&self, path: &Path) -> Result<(), EvalError> {
        let io = |source: std::io::Error| EvalError::Write { path: path.to_owned(), source };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let encoded = encoder.write_header().and_then(|mut w| w.write_image_data(&self.pixels));
        encoded.map_err(|e| io(std::io::Error::other(e)))
    }
}

fn text_width(s: &str, scale: usize) -> usize {
    s.chars().count() * 8 * scale
}

/// Writes the confusion matrix as a PNG heatmap: rows are true classes, columns predicted
/// ones, each cell coloured by its share of the row (recall) and labelled with its count.
///
/// # Errors
/// [`EvalError::Write`] when the file cannot be written.
pub fn confusion_png(path: &Path, confusion: &ConfusionMatrix, title: &str) -> Result<(), EvalError> {
    let k = confusion.classes.len();
    let cell = 56;
    let label_w = confusion.classes.iter().map(|c| text_width(c, 1)).max().unwrap_or(0) + 16;
    let (left, top) = (label_w + 24, 48 + label_w);
    let mut c = Canvas::new(left + k * cell + 24, top + k * cell + 40);
    c.text(8, 8, title, 2, [0, 0, 0]);
    c.text(left, 32, "predicted ->", 1, [80, 80, 80]);
    c.text(4, top - 14, "true", 1, [80, 80, 80]);
    for (i, name) in confusion.classes.iter().enumerate() {
        c.text(left - text_width(name, 1) - 8, top + i * cell + cell / 2 - 4, name, 1, [0, 0, 0]);
        // Column labels, written top-down one character per line.
        for (j, ch) in name.chars().enumerate() {
            c.text(left + i * cell + cell / 2 - 4, 48 + j * 9, &ch.to_string(), 1, [0, 0, 0]);
        }
    }
    for (t, row) in confusion.counts.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
            let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
            let rgb = [shade(8.0), shade(48.0), shade(107.0)];
            c.rect(left + p * cell + 1, top + t * cell + 1, cell - 2, cell - 2, rgb);
            let ink = if share > 0.5 { [255, 255, 255] } else { [0, 0, 0] };
            let s = n.to_string();
            c.text(left + p * cell + (cell - text_width(&s, 1)) / 2, top + t * cell + cell / 2 - 4, &s, 1, ink);
        }
    }
    c.save(path)
}

/// Writes a scatter plot of 2-D coordinates (e.g. [`crate::pca_2d`]) coloured by class, with a
/// legend.
///
/// # Errors
/// [`EvalError::Length`] when points and classes differ in number, [`EvalError::Write`].
pub fn scatter_png(
    path: &Path,
    points: &[[f64; 2]],
    classes: &[usize],
    names: &[String],
    title: &str,
) -> Result<(), EvalError> {
    crate::error::require_len("classes", points.len(), classes.len())?;
    let (plot, margin) = (640usize, 24usize);
    let legend_w = names.iter().map(|n| text_width(n, 1)).max().unwrap_or(0) + 40;
    let mut c = Canvas::new(plot + 2 * margin + legend_w, plot + 2 * margin + 32);
    c.text(margin, 8, title, 2, [0, 0, 0]);
    let finite = points.iter().filter(|p| p[0].is_finite() && p[1].is_finite());
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in finite {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let scale = |v: f64, a: usize| if hi[a] > lo[a] { (v - lo[a]) / (hi[a] - lo[a]) } else { 0.5 };
    let top = margin + 32;
    c.rect(margin - 1, top - 1, plot + 2, 1, [200, 200, 200]);
    c.rect(margin - 1, top + plot, plot + 2, 1, [200, 200, 200]);
    for (p, &k) in points.iter().zip(classes) {
        if p[0].is_finite() && p[1].is_finite() {
            let x = margin as f64 + scale(p[0], 0) * (plot - 1) as f64;
            let y = (top + plot - 1) as f64 - scale(p[1], 1) * (plot - 1) as f64;
            c.disc(x, y, 2.0, PALETTE[k % PALETTE.len()]);
        }
    }
    for (k, name) in names.iter().enumerate() {
        let y = top + k * 16;
        c.rect(plot + 2 * margin, y, 10, 10, PALETTE[k % PALETTE.len()]);
        c.text(plot + 2 * margin + 16, y + 1, name, 1, [0, 0, 0]);
    }
    c.save(path)
}
