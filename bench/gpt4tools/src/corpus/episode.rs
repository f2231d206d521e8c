//! One tool-use episode: an optional image turn, the user's request and
//! the assistant turns (prerequisite call, main call, final answer). An
//! item is the episode cut at one assistant turn.

use rand::seq::IndexedRandom;
use rand::Rng;

use super::catalog::{CorpusTool, Output, Slot};
use super::pools::{Caption, Pools};
use crate::dataset::Item;
use loragen_protocol::react::{answer_message, calls_message, OBSERVATION};

/// An assistant message and, for a call, the observation that followed.
#[derive(Debug, Clone)]
pub struct Turn {
    pub message: String,
    pub observation: Option<String>,
}

/// A whole episode, before cutting.
#[derive(Debug, Clone)]
pub struct Episode {
    pub system: String,
    /// `(path, caption)` of the image the user provided, if any.
    pub image: Option<(String, String)>,
    pub request: String,
    pub turns: Vec<Turn>,
}

impl Episode {
    /// The item whose output is turn `k`: everything before it becomes the
    /// instruction (earlier calls with their observations filled in).
    pub fn cut(&self, k: usize) -> Item {
        let image = self.image.as_ref().map(|(p, c)| (p.as_str(), c.as_str()));
        let mut instruction = self.system.clone();
        instruction.push_str(&loragen_protocol::gpt4tools::render_conversation(
            image,
            &self.request,
        ));
        for turn in &self.turns[..k] {
            instruction.push_str(&turn.message);
            instruction.push_str(&format!(
                "\n{OBSERVATION} {}\n",
                turn.observation.as_deref().unwrap_or_default()
            ));
        }
        let turn = &self.turns[k];
        let output = match turn.observation {
            Some(_) => format!("{}\n{OBSERVATION}", turn.message),
            None => turn.message.clone(),
        };
        Item {
            id: String::new(),
            instruction,
            input: String::new(),
            output,
        }
    }
}

/// A random image path: 8 lowercase letters and `.png`, maybe in a folder.
pub fn image_path(rng: &mut impl Rng) -> String {
    let dir = ["", "image/", "images/", "examples/", "cache/"]
        .choose(rng)
        .copied()
        .unwrap_or_default();
    let name: String = (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("{dir}{name}.png")
}

/// A path for a tool's result, next to its input.
fn result_path(rng: &mut impl Rng, input: &str) -> String {
    let dir = input.rfind('/').map_or("image/", |i| &input[..=i]);
    let name: String = (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    format!("{dir}{name}.png")
}

fn call(name: &str, args: &[String]) -> String {
    calls_message([(name, args.join(", ").as_str())])
}

/// The values the request's slots are filled with.
struct Fill {
    object: String,
    replacement: String,
    prompt: String,
    question: String,
    reply: String,
    instruction: String,
}

impl Fill {
    fn draw(rng: &mut impl Rng, pools: &Pools, caption: &Caption) -> Self {
        let pick = |rng: &mut _, xs: &[String]| xs.choose(rng).cloned().unwrap_or_default();
        let object = pick(rng, &caption.objects);
        let q = pools.questions.choose(rng);
        let question = q
            .map(|q| q.text.replace("{object}", &object))
            .unwrap_or_default();
        let reply = q
            .map(|q| pick(rng, &q.answers).replace("{object}", &object))
            .unwrap_or_default();
        let mut replacement = pick(rng, &pools.replacements);
        while replacement.ends_with(&format!(" {object}")) {
            replacement = pick(rng, &pools.replacements);
        }
        Fill {
            object,
            replacement,
            prompt: pick(rng, &pools.prompts),
            question,
            reply,
            instruction: pick(rng, &pools.edits),
        }
    }

    fn slot(&self, slot: Slot, image: &str) -> String {
        match slot {
            Slot::Image => image.to_owned(),
            Slot::Object => self.object.clone(),
            Slot::Replacement => self.replacement.clone(),
            Slot::Prompt => self.prompt.clone(),
            Slot::Question => self.question.clone(),
            Slot::Instruction => self.instruction.clone(),
        }
    }

    fn request(&self, template: &str, image: &str) -> String {
        let text = template
            .replace("{object}", &self.object)
            .replace("{replacement}", &self.replacement)
            .replace("{prompt}", &self.prompt)
            .replace("{question}", &self.question)
            .replace("{instruction}", &self.instruction)
            .replace("{image}", image);
        capitalise(&text)
    }
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Builds an episode in which `tool` serves the request made from
/// `template`; `system` is the already rendered tool list.
pub fn tool_episode(
    rng: &mut impl Rng,
    pools: &Pools,
    tool: &CorpusTool,
    prerequisite: Option<&CorpusTool>,
    template: &str,
    system: String,
) -> Episode {
    let caption = pools
        .captions
        .choose(rng)
        .cloned()
        .unwrap_or_else(|| Caption {
            text: String::new(),
            objects: vec![],
        });
    let fill = Fill::draw(rng, pools, &caption);
    let path = image_path(rng);
    let image = tool
        .needs_image()
        .then(|| (path.clone(), caption.text.clone()));
    let request = fill.request(template, &path);
    let mut turns = Vec::new();
    let mut input = path.clone();
    if let Some(pre) = prerequisite {
        let out = result_path(rng, &path);
        turns.push(Turn {
            message: call(pre.info.name, std::slice::from_ref(&path)),
            observation: Some(saved(rng, &out)),
        });
        input = out;
    }
    let args: Vec<String> = tool.slots.iter().map(|s| fill.slot(*s, &input)).collect();
    let (observation, reply) = result(rng, tool.output, &fill, &caption, &input);
    turns.push(Turn {
        message: call(tool.info.name, &args),
        observation: Some(observation),
    });
    turns.push(Turn {
        message: answer_message(&reply),
        observation: None,
    });
    Episode {
        system,
        image,
        request,
        turns,
    }
}

fn saved(rng: &mut impl Rng, path: &str) -> String {
    if rng.random_bool(0.5) {
        format!("Result saved as {path}")
    } else {
        path.to_owned()
    }
}

const SIGNS: [&str; 12] = [
    "OPEN",
    "EXIT",
    "Main Street",
    "No Parking",
    "Welcome Home",
    "SALE 50% OFF",
    "Fresh Bread Daily",
    "STOP",
    "Platform 2",
    "Coffee & Tea",
    "Do Not Enter",
    "Happy Birthday",
];

/// The observation of the main call and the assistant's closing reply.
fn result(
    rng: &mut impl Rng,
    output: Output,
    fill: &Fill,
    caption: &Caption,
    input: &str,
) -> (String, String) {
    match output {
        Output::Image => {
            let out = result_path(rng, input);
            let reply = match rng.random_range(0..4) {
                0 => format!("Here is the result: {out}"),
                1 => format!("I have finished. The new image is saved as {out}."),
                2 => format!("Done. You can find the result at {out}."),
                _ => format!("Result saved as {out}"),
            };
            (saved(rng, &out), reply)
        }
        Output::Caption => {
            let text = caption.text.trim_end_matches('.').to_lowercase();
            (text.clone(), format!("The image shows {text}."))
        }
        Output::Detection => {
            let (x, y) = (rng.random_range(0..300), rng.random_range(0..300));
            let (w, h) = (rng.random_range(40..200), rng.random_range(40..200));
            let bbox = format!("[{x}, {y}, {}, {}]", x + w, y + h);
            (
                format!("{} detected at box {bbox}", fill.object),
                format!("I found the {} at box {bbox}.", fill.object),
            )
        }
        Output::Answer => (fill.reply.clone(), format!("{}.", capitalise(&fill.reply))),
        Output::Count => {
            let n = rng.random_range(1..10);
            let text = format!(
                "There are {n} {}{} in the image.",
                fill.object,
                if n == 1 { "" } else { "s" }
            );
            let text = if n == 1 {
                text.replace("There are", "There is")
            } else {
                text
            };
            (text.clone(), text)
        }
        Output::Text => {
            let sign = SIGNS.choose(rng).copied().unwrap_or("OPEN");
            (
                format!("Text found: {sign}"),
                format!("The text in the image says \"{sign}\"."),
            )
        }
        Output::Score => {
            let score = f64::from(rng.random_range(30..95u8)) / 10.0;
            (
                format!("Aesthetic score: {score:.1} / 10"),
                format!("The image gets an aesthetic score of {score:.1} out of 10."),
            )
        }
    }
}
