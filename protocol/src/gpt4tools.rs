//! The 23 tools of the GPT4Tools training split, with descriptions written
//! for loragen, and the GPT4Tools-style prompt built from them.
//!
//! Names and arities are facts of the benchmark; the wording is ours.

use crate::react::conversation_prompt;
use crate::render::gpt4tools_system_prompt;
use crate::spec::{text_schema, ToolSpec};

/// One GPT4Tools tool: its name, our description and how many
/// comma-separated fields its input string holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub arity: usize,
}

impl ToolInfo {
    /// The spec of this tool: a free-text input with `arity` fields.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.into(),
            description: self.description.into(),
            parameters: text_schema(self.arity),
        }
    }
}

const fn tool(name: &'static str, arity: usize, description: &'static str) -> ToolInfo {
    ToolInfo {
        name,
        description,
        arity,
    }
}

/// The training tools in the benchmark's canonical order.
pub const TOOLS: [ToolInfo; 23] = [
    tool("Detect the Give Object", 2, "Finds where a named object appears in a picture and draws boxes around every instance. Use it when the user asks to locate, find or detect something in the image, for example \"where is the cat\" or \"box the cars\". Its input is a comma separated string of two fields: the image path, then the name of the object to find."),
    tool("Segment the Image", 1, "Splits a picture into regions and colours each region, producing a segmentation map of everything in it. Use it when the user wants the image segmented, partitioned into parts, or wants to see all the separate areas. Its input is a string holding only the image path."),
    tool("Get Photo Description", 1, "Writes a caption that says what a picture shows. Use it when the user asks what is inside the photo, wants it described, summarised or captioned, or wants to know what the image is about. Its input is a string holding only the image path."),
    tool("Generate Image From User Input Text", 1, "Paints a brand new picture from a written description. Use it when the user asks to draw, create, imagine or generate an image of something and gives no image to start from. Its input is a string with the description of the picture to make."),
    tool("Edge Detection On Image", 1, "Runs a Canny edge detector on a picture and returns the map of its edges. Use it when the user wants the edges, outlines or contours of the image, or when a later step needs a canny map. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Canny Image", 2, "Creates a new picture that follows the outlines of a canny edge map and a text prompt. Use it when the user wants a new image made from an edge map plus a description. Its input is a comma separated string of two fields: the path of the edge map, then the text describing the new image."),
    tool("Predict Depth On Image", 1, "Estimates how far away every pixel of a picture is and returns a depth map. Use it when the user asks for depth, distance or a 3D sense of the scene, or when a later step needs a depth map. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Depth", 2, "Creates a new picture that keeps the spatial layout of a depth map while following a text prompt. Use it when the user wants a new image generated from a depth map and a description. Its input is a comma separated string of two fields: the path of the depth map, then the text describing the new image."),
    tool("Answer Question About The Image", 2, "Answers a question about what a picture contains. Use it when the user asks something specific about the image, such as a colour, a count, what someone is doing or whether an object is present. Its input is a comma separated string of two fields: the image path, then the question."),
    tool("Instruct Image Using Text", 2, "Edits a picture by following a written instruction, changing its style or content as told. Use it when the user wants the image modified, restyled or turned into something else, for example \"make it look like winter\". Its input is a comma separated string of two fields: the image path, then the instruction."),
    tool("Sketch Detection On Image", 1, "Turns a picture into a rough line sketch similar to a scribble. Use it when the user wants a sketch or scribble of the image, or when a later step needs one. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Sketch Image", 2, "Creates a new picture from a sketch or scribble plus a text prompt. Use it when the user wants a new image drawn from a sketch and a description. Its input is a comma separated string of two fields: the path of the sketch, then the text describing the new image."),
    tool("Generate Image Condition On Segmentations", 2, "Creates a new picture that follows the regions of a segmentation map and a text prompt. Use it when the user wants a new image generated from a segmentation map and a description. Its input is a comma separated string of two fields: the path of the segmentation map, then the text describing the new image."),
    tool("Pose Detection On Image", 1, "Finds the body keypoints of the people in a picture and returns an image of their skeletal poses. Use it when the user wants the human pose, posture or keypoints, or when a later step needs a pose map. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Pose Image", 2, "Creates a new picture of people standing in the poses of a pose map and matching a text prompt. Use it when the user wants a new image generated from a pose map and a description. Its input is a comma separated string of two fields: the path of the pose map, then the text describing the new image."),
    tool("Hed Detection On Image", 1, "Runs holistically nested edge detection on a picture and returns a soft boundary map. Use it when the user wants soft edges or a HED boundary map of the image, or when a later step needs one. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Soft Hed Boundary Image", 2, "Creates a new picture that follows a soft HED boundary map and a text prompt. Use it when the user wants a new image generated from a HED boundary map and a description. Its input is a comma separated string of two fields: the path of the boundary map, then the text describing the new image."),
    tool("Predict Normal Map On Image", 1, "Estimates the surface orientation at every pixel of a picture and returns a normal map. Use it when the user asks for surface normals or a normal map of the image, or when a later step needs one. Its input is a string holding only the image path."),
    tool("Generate Image Condition On Normal Map", 2, "Creates a new picture that follows the surface shapes of a normal map and a text prompt. Use it when the user wants a new image generated from a normal map and a description. Its input is a comma separated string of two fields: the path of the normal map, then the text describing the new image."),
    tool("Line Detection On Image", 1, "Detects the straight lines in a picture, such as walls, roads and edges of furniture, and returns an image of them. Use it when the user wants the straight lines or line segments of the image. Its input is a string holding only the image path."),
    tool("Segment the given object", 2, "Cuts out one named object from a picture and returns its mask. Use it when the user wants a particular thing segmented or isolated, for example \"segment the dog\". Its input is a comma separated string of two fields: the image path, then the name of the object."),
    tool("Remove Something From The Photo", 2, "Erases an object from a picture and fills the gap so the rest looks natural. Use it when the user wants something removed, deleted or erased from the image. Its input is a comma separated string of two fields: the image path, then the object to remove."),
    tool("Replace Something From The Photo", 3, "Swaps one object in a picture for another while keeping the rest of the scene. Use it when the user wants to replace, exchange or substitute something in the image. Its input is a comma separated string of three fields: the image path, the object to replace, then what to put in its place."),
];

/// Renders the GPT4Tools-style system part for the given tools, in order.
pub fn render_system_prompt(tools: &[ToolInfo]) -> String {
    gpt4tools_system_prompt(tools.iter().map(|t| (t.name, t.description)))
}

/// A full GPT4Tools-style instruction: system part, an image turn and the
/// user's request, ready for the model to write the next assistant turn.
///
/// # Examples
///
/// ```
/// use loragen_protocol::gpt4tools::{render_conversation, render_instruction, TOOLS};
///
/// let image = Some(("image/ab12cd34.png", "a dog on a beach."));
/// let full = render_instruction(&TOOLS, image, "Segment this picture.");
/// let compiled = render_conversation(image, "Segment this picture.");
/// // In compiled mode the edge model sees only the conversation.
/// assert!(full.ends_with(&compiled));
/// assert!(full.contains("> Segment the Image: ") && !compiled.contains("> Segment the Image: "));
/// assert!(compiled.contains("New input: Segment this picture."));
/// ```
pub fn render_instruction(
    tools: &[ToolInfo],
    image: Option<(&str, &str)>,
    request: &str,
) -> String {
    let mut out = render_system_prompt(tools);
    out.push_str(&render_conversation(image, request));
    out
}

/// The part after the system prompt: what the edge model sees in compiled
/// mode, with the image given in an earlier turn.
pub fn render_conversation(image: Option<(&str, &str)>, request: &str) -> String {
    let history: Vec<(String, String)> = image
        .map(|(path, caption)| {
            (
                format!("Provide an image named {path}. Description: {caption} Understand the image using tools."),
                "Received.".to_owned(),
            )
        })
        .into_iter()
        .collect();
    conversation_prompt(None, &history, request, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::REMINDER;

    #[test]
    fn names_are_unique_and_arities_match_the_benchmark() {
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 23);
        let three: Vec<&str> = TOOLS
            .iter()
            .filter(|t| t.arity == 3)
            .map(|t| t.name)
            .collect();
        assert_eq!(three, ["Replace Something From The Photo"]);
        assert_eq!(TOOLS.iter().filter(|t| t.arity == 2).count(), 12);
    }

    /// The compiled-mode prompt, spelled out as it was before it was built
    /// from the protocol's conversation writer.
    #[test]
    fn the_conversation_part_is_the_protocol_spelled_out() {
        assert_eq!(
            render_conversation(Some(("a.png", "A dog.")), "Find it."),
            format!("Previous conversation:\nHuman: Provide an image named a.png. Description: A dog. Understand the image using tools.\nAI: Received.\n\nNew input: Find it.\n{REMINDER}\n")
        );
        assert_eq!(
            render_conversation(None, "Draw a cat."),
            format!("Previous conversation:\n\nNew input: Draw a cat.\n{REMINDER}\n")
        );
    }

    #[test]
    fn prompt_lists_every_tool_and_the_protocol() {
        let text = render_instruction(
            &TOOLS[..5],
            Some(("image/abcdefgh.png", "A dog on a beach.")),
            "Find the dog.",
        );
        for t in &TOOLS[..5] {
            assert!(text.contains(&format!("> {}: ", t.name)));
        }
        let system_end = text.find("Previous conversation:").unwrap();
        assert!(text[system_end..].contains("New input: Find the dog."));
        assert!(text.trim_end().ends_with("Let's think step by step."));
    }
}
