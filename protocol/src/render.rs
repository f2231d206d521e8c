//! Rendering tool definitions into the system prompt.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::react::{ACTION, ACTION_INPUT, ANSWER, NO, OBSERVATION, THOUGHT, YES};
use crate::spec::{stated_field_kinds, FieldKind, InputKind, ToolSpec};

const PERSONA: &str = "Visual assistant is a language model built to help with a wide range of text and picture tasks, from answering simple questions to explaining, editing and creating images. It cannot look at pictures directly, so it relies on tools to understand them. Every image it handles has a file name such as \"image/xxxxxxxx.png\", and it calls tools to inspect, analyse or transform those files. It never invents file names or tool results, it passes image paths to tools exactly as given, and it keeps its answers short and faithful to what the tools returned.";

/// The sentence after the user's request that asks for the protocol.
pub const REMINDER: &str =
    "Visual assistant must work out the answer step by step, using the format above. Let's think step by step.";

/// The GPT4Tools-style system part: persona, `> Name: description` lines
/// and the protocol rules naming the allowed tools.
pub fn gpt4tools_system_prompt<'a>(tools: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str(PERSONA);
    out.push_str("\n\nTOOLS:\n------\n\nVisual assistant has access to the following tools:\n");
    let mut names = Vec::new();
    for (name, description) in tools {
        out.push_str(&format!("> {name}: {description}\n"));
        names.push(name);
    }
    out.push_str(&protocol_rules(&names.join(", "), "the input to the tool"));
    out
}

/// Whether any of `specs` takes JSON arguments (rather than free text):
/// such a set is rendered by [`json_system_prompt`] and its messages may
/// hold several calls.
///
/// # Examples
///
/// ```
/// use loragen_protocol::gpt4tools::TOOLS;
/// use loragen_protocol::render::takes_json;
///
/// let gpt4tools: Vec<_> = TOOLS.iter().map(|t| t.spec()).collect();
/// assert!(!takes_json(&gpt4tools), "every GPT4Tools tool takes free text");
/// ```
pub fn takes_json(specs: &[ToolSpec]) -> bool {
    specs.iter().any(|s| s.input_kind() == InputKind::Json)
}

/// The system part for `specs`, as the agent shows it in context and as a
/// generator compiles it: the GPT4Tools style when every tool takes free
/// text, the JSON-schema style otherwise.
///
/// # Examples
///
/// ```
/// use loragen_protocol::render::system_prompt;
/// use loragen_protocol::ToolSpec;
///
/// let clock = ToolSpec {
///     name: "get_time".into(),
///     description: "The time in a timezone.".into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"timezone": {"type": "string"}}}),
/// };
/// let system = system_prompt(&[clock]);
/// assert!(system.contains("\"name\":\"get_time\""));
/// ```
pub fn system_prompt(specs: &[ToolSpec]) -> String {
    if takes_json(specs) {
        json_system_prompt(specs)
    } else {
        gpt4tools_system_prompt(
            specs
                .iter()
                .map(|s| (s.name.as_str(), s.description.as_str())),
        )
    }
}

/// The registry fingerprint: the sha256 of a rendered system part (from
/// [`system_prompt`]). Compiled adapters, their manifests and every cache of
/// them are keyed by it. It hashes the text the generator reads, so any
/// change of a name, a description, a schema or of the rendering is a new
/// fingerprint, as it is a new adapter. Schema keys are rendered sorted, so
/// their order in a tools file does not count.
///
/// # Examples
///
/// ```
/// use loragen_protocol::render::{fingerprint, system_prompt};
/// use loragen_protocol::ToolSpec;
///
/// let spec = |description: &str| ToolSpec {
///     name: "get_time".into(),
///     description: description.into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"tz": {"type": "string"}}}),
/// };
/// let a = fingerprint(&system_prompt(&[spec("The time.")]));
/// assert_eq!(a.len(), 64);
/// assert_eq!(a, fingerprint(&system_prompt(&[spec("The time.")])));
/// assert_ne!(a, fingerprint(&system_prompt(&[spec("The local time.")])));
/// ```
pub fn fingerprint(system: &str) -> String {
    crate::digest::sha256_hex(system.as_bytes())
}

/// The JSON-schema style: one JSON object per tool, arguments as JSON.
///
/// # Examples
///
/// ```
/// use loragen_protocol::render::json_system_prompt;
/// use loragen_protocol::ToolSpec;
///
/// let clock = ToolSpec {
///     name: "get_time".into(),
///     description: "The time in a timezone.".into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"timezone": {"type": "string"}}}),
/// };
/// let system = json_system_prompt(&[clock]);
/// assert!(system.starts_with("You are a helpful assistant that can call functions."));
/// assert!(system.contains(r#""name":"get_time""#));
/// ```
pub fn json_system_prompt(specs: &[ToolSpec]) -> String {
    let mut out = String::from(
        "You are a helpful assistant that can call functions. Each function is described by a JSON object with its name, description and JSON Schema parameters:\n\n",
    );
    for spec in specs {
        let line = serde_json::json!({"name": spec.name, "description": spec.description, "parameters": spec.parameters});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    out.push_str(&protocol_rules(
        &names.join(", "),
        "the arguments as one JSON object",
    ));
    out.push_str(PARALLEL_RULE);
    out
}

/// How the JSON protocol makes several calls at once (see
/// `react::JsonCallsParser`).
const PARALLEL_RULE: &str = "To make several calls at once, write one Action and Action Input pair per call, one after the other, before any Observation. Each call's result comes back as its own Observation line, in the order of the calls.\n\n";

fn protocol_rules(names: &str, input: &str) -> String {
    format!(
        "\nTo use a tool, follow this format exactly:\n\n```\n{THOUGHT} {YES}\n{ACTION} the tool to use, one of [{names}]\n{ACTION_INPUT} {input}\n{OBSERVATION} the result of the tool\n```\n\nWhen you have an answer for the Human, or no tool is needed, use this format:\n\n```\n{THOUGHT} {NO}\n{ANSWER} [your answer here]\n```\n\nRemember to copy file names exactly and never make them up.\n\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiled adapters and their caches are keyed by these fingerprints:
    /// a change of the rendering (or of the protocol strings it quotes)
    /// must be deliberate, with the values below updated and the caches
    /// invalidated. They were taken before the protocol strings became
    /// constants.
    #[test]
    fn the_rendering_and_so_every_fingerprint_is_pinned() {
        let gpt4tools = crate::gpt4tools::render_system_prompt(&crate::gpt4tools::TOOLS);
        let json = json_system_prompt(&[ToolSpec {
            name: "get_time".into(),
            description: "The time.".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"tz": {"type": "string"}}}),
        }]);
        assert_eq!(
            fingerprint(&gpt4tools),
            "460a15362c78ab4bae8a7cb35783cd1328d590ac5ee4021cde02aa2e4c45103c"
        );
        assert_eq!(
            fingerprint(&json),
            "57017ef387a8a9edf369b86cb9cad09d4c7cf833a9a0559cc8c2208a3f2306b9"
        );
    }
}

/// What the names-only controls of the unseen-tools suite put in a prompt
/// that has no definitions (a measurement of how much of the gap is knowing
/// the names, not a mode of the agent).
///
/// # Examples
///
/// ```
/// use loragen_protocol::render::{tool_names_line, NameHint};
/// use loragen_protocol::ToolSpec;
///
/// let spec = ToolSpec {
///     name: "get_weather".into(),
///     description: "Weather of a city.".into(),
///     parameters: serde_json::json!({"type": "object", "required": ["city"],
///         "properties": {"unit": {"type": "string"}, "city": {"type": "string"}}}),
/// };
/// let hint: NameHint = "keys".parse()?;
/// assert_eq!(tool_names_line(std::slice::from_ref(&spec), NameHint::Names), "Tools: get_weather.");
/// assert_eq!(tool_names_line(&[spec], hint), "Tools: get_weather(city, unit).");
/// // A free-text tool's keys are its fields' kinds, as its description states them.
/// let vqa = ToolSpec {
///     name: "Answer Question About The Image".into(),
///     description: "Its input is a comma separated string of two fields: the image path, then the question.".into(),
///     parameters: loragen_protocol::spec::text_schema(2),
/// };
/// assert_eq!(tool_names_line(&[vqa], hint), "Tools: Answer Question About The Image(path, text).");
/// assert!("values".parse::<NameHint>().unwrap_err().to_string().contains("expected one of names, keys"));
/// # Ok::<(), loragen_protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameHint {
    /// One line of the tool names.
    Names,
    /// The names, each with its argument keys: JSON properties, required
    /// first, or a free-text tool's field kinds (`path`, `text`).
    Keys,
}

impl NameHint {
    pub const ALL: [NameHint; 2] = [NameHint::Names, NameHint::Keys];

    pub fn name(self) -> &'static str {
        match self {
            NameHint::Names => "names",
            NameHint::Keys => "keys",
        }
    }
}

impl std::fmt::Display for NameHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for NameHint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        crate::mode::parse_name("name hint", &NameHint::ALL, NameHint::name, s)
    }
}

/// The one line a [`NameHint`] puts before a prompt without definitions.
///
/// # Examples
///
/// ```
/// use loragen_protocol::render::{tool_names_line, NameHint};
/// use loragen_protocol::spec::text_schema;
/// use loragen_protocol::ToolSpec;
///
/// let weather = ToolSpec {
///     name: "get_weather".into(),
///     description: "Weather of a city.".into(),
///     parameters: serde_json::json!({"type": "object",
///         "properties": {"unit": {"type": "string"}, "city": {"type": "string"}}, "required": ["city"]}),
/// };
/// let segment = ToolSpec {
///     name: "Segment the Image".into(),
///     description: "Its input is a string holding only the image path.".into(),
///     parameters: text_schema(1),
/// };
/// let specs = [weather, segment];
/// assert_eq!(tool_names_line(&specs, NameHint::Names), "Tools: get_weather, Segment the Image.");
/// assert_eq!(
///     tool_names_line(&specs, NameHint::Keys),
///     "Tools: get_weather(city, unit), Segment the Image(path)."
/// );
/// ```
pub fn tool_names_line(specs: &[ToolSpec], hint: NameHint) -> String {
    let tools: Vec<String> = specs
        .iter()
        .map(|spec| match hint {
            NameHint::Names => spec.name.clone(),
            NameHint::Keys => format!("{}({})", spec.name, argument_keys(spec).join(", ")),
        })
        .collect();
    format!("Tools: {}.", tools.join(", "))
}

/// A tool's argument keys: its JSON properties, required ones first, or
/// its free-text fields' kinds.
fn argument_keys(spec: &ToolSpec) -> Vec<String> {
    match spec.input_kind() {
        InputKind::Text { fields } => stated_field_kinds(&spec.description, fields)
            .into_iter()
            .map(|kind| match kind {
                FieldKind::Path => "path".to_owned(),
                FieldKind::Text => "text".to_owned(),
            })
            .collect(),
        InputKind::Json => {
            let required: Vec<&str> = spec.parameters["required"]
                .as_array()
                .map(|r| r.iter().filter_map(|k| k.as_str()).collect())
                .unwrap_or_default();
            let mut keys: Vec<String> = required.iter().map(|k| (*k).to_owned()).collect();
            if let Some(properties) = spec.parameters["properties"].as_object() {
                keys.extend(
                    properties
                        .keys()
                        .filter(|k| !required.contains(&k.as_str()))
                        .cloned(),
                );
            }
            keys
        }
    }
}
