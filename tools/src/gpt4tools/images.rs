//! Offline implementations of the GPT4Tools image tools that need no
//! neural network: Canny edges, straight lines, a pencil sketch and soft
//! (Sobel) boundaries. Each reads the image at the given path and writes
//! its result next to it.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use image::{GrayImage, Luma, Rgb, RgbImage};
use imageproc::hough::{detect_lines, draw_polar_lines, LineDetectionOptions};

use crate::error::ToolError;
use crate::tool::{TextInput, Tool};
use loragen_protocol::gpt4tools::TOOLS;

/// Which image operation a tool performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Canny,
    Lines,
    Sketch,
    SoftEdges,
}

impl Operation {
    /// The GPT4Tools tool this operation implements.
    pub fn tool_name(self) -> &'static str {
        match self {
            Operation::Canny => "Edge Detection On Image",
            Operation::Lines => "Line Detection On Image",
            Operation::Sketch => "Sketch Detection On Image",
            Operation::SoftEdges => "Hed Detection On Image",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Operation::Canny => "edge",
            Operation::Lines => "line",
            Operation::Sketch => "sketch",
            Operation::SoftEdges => "hed",
        }
    }

    pub const ALL: [Operation; 4] = [
        Operation::Canny,
        Operation::Lines,
        Operation::Sketch,
        Operation::SoftEdges,
    ];

    /// Applies the operation to an image in memory.
    pub fn apply(self, gray: &GrayImage) -> GrayImage {
        match self {
            Operation::Canny => imageproc::edges::canny(gray, 50.0, 100.0),
            Operation::Lines => {
                let edges = imageproc::edges::canny(gray, 50.0, 100.0);
                let vote = (gray.width().min(gray.height()) / 4).max(10);
                let lines = detect_lines(
                    &edges,
                    LineDetectionOptions {
                        vote_threshold: vote,
                        suppression_radius: 8,
                    },
                );
                let black = RgbImage::from_pixel(gray.width(), gray.height(), Rgb([0, 0, 0]));
                image::DynamicImage::ImageRgb8(draw_polar_lines(
                    &black,
                    &lines,
                    Rgb([255, 255, 255]),
                ))
                .to_luma8()
            }
            Operation::Sketch => {
                // Colour dodge of the image with its blurred negative.
                let blurred = imageproc::filter::gaussian_blur_f32(&invert(gray), 8.0);
                GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
                    let base = f32::from(gray.get_pixel(x, y)[0]);
                    let blend = f32::from(blurred.get_pixel(x, y)[0]);
                    Luma([((base * 255.0) / (256.0 - blend)).min(255.0) as u8])
                })
            }
            Operation::SoftEdges => {
                let g = imageproc::gradients::sobel_gradients(
                    &imageproc::filter::gaussian_blur_f32(gray, 1.5),
                );
                let max = g.pixels().map(|p| p[0]).max().unwrap_or(1).max(1);
                GrayImage::from_fn(g.width(), g.height(), |x, y| {
                    Luma([(u32::from(g.get_pixel(x, y)[0]) * 255 / u32::from(max)) as u8])
                })
            }
        }
    }
}

fn invert(gray: &GrayImage) -> GrayImage {
    GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
        Luma([255 - gray.get_pixel(x, y)[0]])
    })
}

/// An image tool working on files.
#[derive(Debug, Clone, Copy)]
pub struct ImageTool(pub Operation);

/// Where the result of `op` on `input` is written: beside the input.
pub fn output_path(input: &Path, op: Operation) -> PathBuf {
    let stem = input
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image");
    input.with_file_name(format!("{stem}_{}.png", op.suffix()))
}

#[async_trait]
impl Tool for ImageTool {
    type Args = TextInput;
    type Output = String;

    fn name(&self) -> String {
        self.0.tool_name().to_owned()
    }

    fn description(&self) -> String {
        TOOLS
            .iter()
            .find(|t| t.name == self.0.tool_name())
            .map(|t| t.description.to_owned())
            .unwrap_or_default()
    }

    async fn call(&self, args: TextInput) -> Result<String, ToolError> {
        let input = PathBuf::from(args.fields()[0]);
        let op = self.0;
        // Image work is CPU-bound; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let img = image::open(&input).map_err(|e| {
                ToolError::Failed(format!("cannot open image {}: {e}", input.display()))
            })?;
            let out = output_path(&input, op);
            op.apply(&img.to_luma8())
                .save(&out)
                .map_err(|e| ToolError::Failed(format!("cannot write {}: {e}", out.display())))?;
            Ok(out.display().to_string())
        })
        .await
        .map_err(|e| ToolError::Failed(format!("image tool failed: {e}")))?
    }
}
