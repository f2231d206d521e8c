//! Run with: cargo run --release --example gpt4tools_registry
//!
//! The 23 GPT4Tools tools as a registry: edge, line, sketch and soft-edge
//! detection run offline on a picture drawn here; the tools that need a
//! neural network answer that they are not available offline. The same
//! registry backs `loragen repl` and `make demo`.

use image::{Rgb, RgbImage};
use loragen::tools::gpt4tools::registry;
use loragen::tools::InputKind;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tools = registry()?;
    let dir = tempfile::tempdir()?;
    let picture = dir.path().join("qwerasdf.png");
    // A house: a square, a triangular roof and a door.
    let mut img = RgbImage::from_pixel(160, 120, Rgb([235, 235, 220]));
    for (x, y) in (0..160u32).flat_map(|x| (0..120u32).map(move |y| (x, y))) {
        let wall = (40..120).contains(&x) && (50..110).contains(&y);
        let roof = (20..50).contains(&y) && x + y >= 90 && x <= y + 70;
        let door = (72..88).contains(&x) && (80..110).contains(&y);
        if door {
            img.put_pixel(x, y, Rgb([90, 50, 20]));
        } else if wall || roof {
            img.put_pixel(x, y, Rgb([180, 40, 40]));
        }
    }
    img.save(&picture)?;

    println!("fingerprint {}", tools.fingerprint());
    for spec in tools.specs() {
        let InputKind::Text { fields } = spec.input_kind() else {
            continue;
        };
        let input = match fields {
            1 => picture.display().to_string(),
            2 => format!("{}, a blue house", picture.display()),
            _ => format!("{}, house, castle", picture.display()),
        };
        let result = tools
            .prepare(&spec.name, &input)
            .map_err(anyhow::Error::from)?
            .run()
            .await;
        match result {
            Ok(value) => println!(
                "{:<52} -> {}",
                spec.name,
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            ),
            Err(e) => println!("{:<52} -> {e}", spec.name),
        }
    }
    Ok(())
}
