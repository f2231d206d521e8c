//! What the corpus builder knows about each tool: the meaning of each
//! argument, the prerequisite tool and the kind of result. The 23 training
//! tools come from `loragen_protocol::gpt4tools`; the 8 unseen tools, used by
//! the `test_unseen` split only, are defined here.

use loragen_protocol::gpt4tools::{ToolInfo, TOOLS};

/// What one comma-separated argument holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Image,
    Object,
    Replacement,
    Prompt,
    Question,
    Instruction,
}

/// What a tool gives back, which shapes its observation and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Image,
    Caption,
    Detection,
    Answer,
    Count,
    Text,
    Score,
}

/// A tool as the corpus builder uses it.
#[derive(Debug, Clone, Copy)]
pub struct CorpusTool {
    pub info: ToolInfo,
    pub slots: &'static [Slot],
    pub prerequisite: Option<&'static str>,
    pub output: Output,
    /// True for the 8 tools that only `test_unseen` may use.
    pub unseen: bool,
}

impl CorpusTool {
    pub fn needs_image(&self) -> bool {
        self.slots.contains(&Slot::Image)
    }
}

use Slot::{
    Image as I, Instruction as Ins, Object as O, Prompt as P, Question as Q, Replacement as R,
};

/// Slots, prerequisite and output of the training tools, by name.
const SEEN: [(&str, &[Slot], Option<&str>, Output); 23] = [
    ("Detect the Give Object", &[I, O], None, Output::Detection),
    ("Segment the Image", &[I], None, Output::Image),
    ("Get Photo Description", &[I], None, Output::Caption),
    (
        "Generate Image From User Input Text",
        &[P],
        None,
        Output::Image,
    ),
    ("Edge Detection On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Canny Image",
        &[I, P],
        Some("Edge Detection On Image"),
        Output::Image,
    ),
    ("Predict Depth On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Depth",
        &[I, P],
        Some("Predict Depth On Image"),
        Output::Image,
    ),
    (
        "Answer Question About The Image",
        &[I, Q],
        None,
        Output::Answer,
    ),
    ("Instruct Image Using Text", &[I, Ins], None, Output::Image),
    ("Sketch Detection On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Sketch Image",
        &[I, P],
        Some("Sketch Detection On Image"),
        Output::Image,
    ),
    (
        "Generate Image Condition On Segmentations",
        &[I, P],
        Some("Segment the Image"),
        Output::Image,
    ),
    ("Pose Detection On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Pose Image",
        &[I, P],
        Some("Pose Detection On Image"),
        Output::Image,
    ),
    ("Hed Detection On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Soft Hed Boundary Image",
        &[I, P],
        Some("Hed Detection On Image"),
        Output::Image,
    ),
    ("Predict Normal Map On Image", &[I], None, Output::Image),
    (
        "Generate Image Condition On Normal Map",
        &[I, P],
        Some("Predict Normal Map On Image"),
        Output::Image,
    ),
    ("Line Detection On Image", &[I], None, Output::Image),
    ("Segment the given object", &[I, O], None, Output::Image),
    (
        "Remove Something From The Photo",
        &[I, O],
        None,
        Output::Image,
    ),
    (
        "Replace Something From The Photo",
        &[I, O, R],
        None,
        Output::Image,
    ),
];

const fn unseen(
    name: &'static str,
    slots: &'static [Slot],
    output: Output,
    description: &'static str,
) -> CorpusTool {
    CorpusTool {
        info: ToolInfo {
            name,
            description,
            arity: slots.len(),
        },
        slots,
        prerequisite: None,
        output,
        unseen: true,
    }
}

/// The 4 seen tools the development variants of learners are trained
/// without (`train --hold-out`, `docs/generator.md`): the GPT4Tools
/// development set of unseen tools is the `val_seen` items listing one.
pub const HELD_OUT_DEV: [&str; 4] = [
    "Segment the Image",
    "Get Photo Description",
    "Generate Image Condition On Sketch Image",
    "Remove Something From The Photo",
];

/// The 8 tools that never appear in training.
pub const UNSEEN_TOOLS: [CorpusTool; 8] = [
    unseen("Count Objects In Image", &[I, O], Output::Count, "Counts how many instances of a named object a picture contains. Use it when the user asks how many of something there are, or wants a tally of some object. Its input is a comma separated string of two fields: the image path, then the name of the object to count."),
    unseen("Recognize Text In Image", &[I], Output::Text, "Reads the printed or written text that appears in a picture, such as signs, labels or pages. Use it when the user asks what the text says, wants it transcribed or asks for OCR. Its input is a string holding only the image path."),
    unseen("Upscale Image Resolution", &[I], Output::Image, "Enlarges a picture four times with a super-resolution network so it stays sharp. Use it when the user wants a higher resolution, a bigger or crisper version, or an HD copy of the image. Its input is a string holding only the image path."),
    unseen("Colorize Black And White Photo", &[I], Output::Image, "Adds natural colours to a grayscale or black and white picture. Use it when the user wants an old or monochrome photo coloured or restored to colour. Its input is a string holding only the image path."),
    unseen("Crop The Given Object", &[I, O], Output::Image, "Cuts the picture down to the box around one named object and returns that crop. Use it when the user wants to crop, zoom in on or make a close-up of a particular thing. Its input is a comma separated string of two fields: the image path, then the name of the object."),
    unseen("Blur Image Background", &[I], Output::Image, "Keeps the main subject sharp and blurs everything behind it, like a portrait lens. Use it when the user wants a blurred or out-of-focus background, bokeh or a portrait effect. Its input is a string holding only the image path."),
    unseen("Convert Image To Cartoon Style", &[I], Output::Image, "Redraws a picture in the flat colours and bold outlines of a cartoon. Use it when the user wants the image cartoonised, made to look animated or drawn like a comic. Its input is a string holding only the image path."),
    unseen("Score Image Aesthetics", &[I], Output::Score, "Rates how pleasing a picture looks on a scale from 1 to 10, judging composition, lighting and colour. Use it when the user asks how good, beautiful or well composed the image is. Its input is a string holding only the image path."),
];

/// All 31 tools: the 23 training tools, then the 8 unseen ones.
pub fn all_tools() -> Vec<CorpusTool> {
    let mut tools: Vec<CorpusTool> = TOOLS
        .iter()
        .zip(SEEN)
        .map(|(info, (name, slots, prerequisite, output))| {
            debug_assert_eq!(info.name, name);
            CorpusTool {
                info: *info,
                slots,
                prerequisite,
                output,
                unseen: false,
            }
        })
        .collect();
    tools.extend(UNSEEN_TOOLS);
    tools
}

/// The arity of a known tool, for checking files.
pub fn arity_of(name: &str) -> Option<usize> {
    TOOLS
        .iter()
        .chain(UNSEEN_TOOLS.iter().map(|t| &t.info))
        .find(|t| t.name == name)
        .map(|t| t.arity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field kinds the grammar reads from a description agree with the
    /// catalogue's slots for every tool, seen and unseen: a path exactly
    /// where the tool takes an image.
    #[test]
    fn descriptions_state_the_field_kinds_of_every_tool() {
        use loragen_protocol::spec::{stated_field_kinds, FieldKind};
        for t in all_tools() {
            let want: Vec<FieldKind> = t
                .slots
                .iter()
                .map(|s| match s {
                    Slot::Image => FieldKind::Path,
                    _ => FieldKind::Text,
                })
                .collect();
            assert_eq!(
                stated_field_kinds(t.info.description, t.info.arity),
                want,
                "{}: {}",
                t.info.name,
                t.info.description
            );
        }
    }

    #[test]
    fn the_development_hold_outs_are_seen_catalogue_tools() {
        for name in HELD_OUT_DEV {
            let tool = all_tools().into_iter().find(|t| t.info.name == name);
            assert!(tool.is_some_and(|t| !t.unseen), "{name}");
        }
    }

    #[test]
    fn slots_agree_with_the_benchmark_arities_and_prerequisites_exist() {
        let tools = all_tools();
        assert_eq!(tools.len(), 31);
        for (t, (name, ..)) in tools.iter().zip(SEEN) {
            assert_eq!(t.info.name, name);
        }
        for t in &tools {
            assert_eq!(t.slots.len(), t.info.arity, "{}", t.info.name);
            if let Some(p) = t.prerequisite {
                let pre = tools.iter().find(|x| x.info.name == p).unwrap();
                assert_eq!(pre.slots, &[Slot::Image], "{p}");
            }
        }
    }
}
