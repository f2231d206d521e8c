//! The call grammar of a registry (GBNF): the model may only name
//! registered tools, and each tool's input must fit its schema. With it the
//! edge model calls tools correctly even when their definitions are not in
//! its context.

use loragen_protocol::react::{ACTION, ACTION_INPUT, ANSWER, NO, OBSERVATION, THOUGHT, YES};
use loragen_protocol::{FieldKind, InputKind, ToolSpec};

use crate::error::{Error, Result};

mod compact;

pub use compact::CompactLimits;

/// Whether a message may, must or must not call a tool (OpenAI's
/// `tool_choice`; a named function is [`CallChoice::Required`] over a
/// registry of that function alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallChoice {
    /// A call or an answer, as the model decides.
    #[default]
    Auto,
    /// At least one call.
    Required,
    /// An answer, no call.
    None,
}

/// What a call grammar admits beyond the tools' own inputs.
///
/// # Examples
///
/// ```
/// use loragen_agent::grammar::GrammarParams;
///
/// let p = GrammarParams::default().with_max_calls(4);
/// assert_eq!(p.max_calls, 4);
/// assert!(GrammarParams::default().with_max_calls(0).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrammarParams {
    /// Calls one message may make: 1 for the GPT4Tools protocol, more for
    /// the JSON protocol's parallel calls.
    pub max_calls: usize,
    /// Bounds of the compact JSON where a schema sets none.
    pub limits: CompactLimits,
    /// Call, answer or either.
    pub choice: CallChoice,
    /// Free-text fields follow their kind as the tool's description states
    /// it (`ToolSpec::field_kinds`): a path field admits no comma and no
    /// space, so a one-field path tool cannot take a second field. Off,
    /// every field but the last is comma-free and the last takes the rest.
    pub field_aware: bool,
}

impl Default for GrammarParams {
    fn default() -> Self {
        GrammarParams {
            max_calls: 1,
            limits: CompactLimits::default(),
            choice: CallChoice::Auto,
            field_aware: false,
        }
    }
}

impl GrammarParams {
    /// Calls one message may make (at least 1): 1 for the GPT4Tools
    /// protocol, more for parallel JSON calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::grammar::call_grammar_with;
    /// use loragen_agent::grammar::GrammarParams;
    /// use loragen_protocol::ToolSpec;
    ///
    /// let tools = [ToolSpec {
    ///     name: "ping".into(),
    ///     description: "Pings a host.".into(),
    ///     parameters: serde_json::json!({"type": "object", "properties": {"host": {"type": "string"}}}),
    /// }];
    /// let one = call_grammar_with(&tools, &GrammarParams::default())?;
    /// let three = call_grammar_with(&tools, &GrammarParams::default().with_max_calls(3))?;
    /// assert_ne!(one, three);
    /// # Ok::<(), loragen_agent::Error>(())
    /// ```
    #[must_use]
    pub fn with_max_calls(mut self, max_calls: usize) -> Self {
        self.max_calls = max_calls;
        self
    }

    /// Bounds of the compact JSON where a schema sets none (at least one
    /// array item and one digit).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::grammar::{CompactLimits, GrammarParams};
    ///
    /// let short = CompactLimits { max_string: 32, ..CompactLimits::default() };
    /// assert!(GrammarParams::default().with_limits(short).validate().is_ok());
    /// let none = CompactLimits { max_items: 0, ..CompactLimits::default() };
    /// assert!(GrammarParams::default().with_limits(none).validate().is_err());
    /// ```
    #[must_use]
    pub fn with_limits(mut self, limits: CompactLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether the message may, must or must not call (see [`CallChoice`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::grammar::{CallChoice, GrammarParams};
    ///
    /// let p = GrammarParams::default().with_choice(CallChoice::Required);
    /// assert_eq!(p.choice, CallChoice::Required);
    /// ```
    #[must_use]
    pub fn with_choice(mut self, choice: CallChoice) -> Self {
        self.choice = choice;
        self
    }

    /// Free-text fields follow the kinds the tool's description states: a
    /// path field takes no comma and no space.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::grammar::{call_grammar_with, GrammarParams};
    /// use loragen_protocol::{spec::text_schema, ToolSpec};
    ///
    /// let tools = [ToolSpec {
    ///     name: "Get Photo Description".into(),
    ///     description: "The input to this tool should be a string, representing the image_path".into(),
    ///     parameters: text_schema(1),
    /// }];
    /// let plain = call_grammar_with(&tools, &GrammarParams::default())?;
    /// let aware = call_grammar_with(&tools, &GrammarParams::default().with_field_aware(true))?;
    /// assert_ne!(plain, aware, "the path field gets its own rule");
    /// # Ok::<(), loragen_agent::Error>(())
    /// ```
    #[must_use]
    pub fn with_field_aware(mut self, field_aware: bool) -> Self {
        self.field_aware = field_aware;
        self
    }

    pub fn validate(&self) -> Result<()> {
        let l = self.limits;
        if self.max_calls == 0 || l.max_items == 0 || l.max_digits == 0 {
            return Err(Error::InvalidParam(format!(
                "a call grammar needs at least one call, one array item and one digit (got {self:?})"
            )));
        }
        Ok(())
    }
}

/// A grammar for one GPT4Tools/ReAct message: either a call of a
/// registered tool or a direct answer.
pub fn call_grammar(tools: &[ToolSpec]) -> Result<String> {
    call_grammar_with(tools, &GrammarParams::default())
}

/// A grammar for one message: either up to `params.max_calls` calls of
/// registered tools, one `Action:` / `Action Input:` pair each, or a direct
/// answer, as `params.choice` allows. JSON inputs follow the compact
/// grammar of the tool's schema (see [`CompactLimits`]); a schema it cannot
/// express is an error naming the tool and the keyword.
///
/// # Examples
///
/// ```
/// use loragen_agent::grammar::{call_grammar_with, CallChoice, GrammarParams};
/// use loragen_protocol::ToolSpec;
///
/// let tools = [ToolSpec {
///     name: "get_weather".into(),
///     description: "Weather of a city".into(),
///     parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
/// }];
/// let required = call_grammar_with(&tools, &GrammarParams::default().with_choice(CallChoice::Required))?;
/// assert!(required.starts_with(r#"root ::= "Thought: Do I need to use a tool? " yes"#));
/// let none = call_grammar_with(&tools, &GrammarParams::default().with_choice(CallChoice::None))?;
/// assert!(!none.contains("get_weather"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn call_grammar_with(tools: &[ToolSpec], params: &GrammarParams) -> Result<String> {
    params.validate()?;
    let branches = match params.choice {
        CallChoice::Auto => "(yes | no)",
        CallChoice::Required => "yes",
        CallChoice::None => "no",
    };
    let thought = gbnf_string(&format!("{THOUGHT} "));
    let mut rules = vec![
        format!("root ::= {thought} {branches}"),
        format!(
            r#"no ::= {} [^\n]{{1,300}} "\n""#,
            gbnf_string(&format!("{NO}\n{ANSWER} "))
        ),
    ];
    if params.choice == CallChoice::Required && tools.is_empty() {
        return Err(Error::Grammar {
            detail: "a call is required, but no tool is offered".into(),
        });
    }
    if tools.is_empty() || params.choice == CallChoice::None {
        rules[0] = format!("root ::= {thought} no");
        return Ok(rules.join("\n") + "\n");
    }
    let mut alternatives = Vec::new();
    for (i, spec) in tools.iter().enumerate() {
        let prefix = format!("t{i}-");
        let args = match spec.input_kind() {
            InputKind::Text { fields } if params.field_aware => {
                // Each field as its kind: a path without commas or spaces,
                // text without commas but for the last field's.
                let kinds = loragen_protocol::spec::stated_field_kinds(&spec.description, fields);
                let last = kinds.len() - 1;
                let parts: Vec<&str> = kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| match (kind, i == last) {
                        (FieldKind::Path, false) => r"[^, \n]{1,64}",
                        (FieldKind::Path, true) => r"[^, \n]{1,96}",
                        (FieldKind::Text, false) => r"[^,\n]{1,64}",
                        (FieldKind::Text, true) => r"[^\n]{1,96}",
                    })
                    .collect();
                rules.push(format!(r#"{prefix}args ::= {}"#, parts.join(r#" ", " "#)));
                format!("{prefix}args")
            }
            InputKind::Text { fields } => {
                // Every field but the last is comma-free; the last takes the
                // rest of the line. Lengths are bounded so a call always
                // finishes within the agent's token limit.
                let head = format!(r#"{prefix}field ::= [^,\n]{{1,64}}"#);
                let body = (1..fields)
                    .map(|_| format!(r#"{prefix}field ", " "#))
                    .collect::<String>();
                rules.push(head);
                rules.push(format!(r#"{prefix}args ::= {body}[^\n]{{1,96}}"#));
                format!("{prefix}args")
            }
            InputKind::Json => {
                let (json_rules, value) =
                    compact::schema_rules(&spec.parameters, &prefix, params.limits).map_err(
                        |detail| Error::Grammar {
                            detail: format!("tool `{}`: {detail}", spec.name),
                        },
                    )?;
                rules.extend(json_rules);
                value
            }
        };
        rules.push(format!(
            r#"{prefix}call ::= {} {} {args} "\n""#,
            gbnf_string(&spec.name),
            gbnf_string(&format!("\n{ACTION_INPUT} "))
        ));
        alternatives.push(format!("{prefix}call"));
    }
    rules.push(format!(
        "call ::= {} ({})",
        gbnf_string(&format!("{ACTION} ")),
        alternatives.join(" | ")
    ));
    // The calls may be followed by `Observation:` (a stop string): after a
    // call the model wants to write it, and were it forbidden, the most
    // likely allowed token would start yet another call.
    let yes = gbnf_string(&format!("{YES}\n"));
    let observation = gbnf_string(OBSERVATION);
    rules.push(match params.max_calls {
        1 => format!("yes ::= {yes} call {observation}?"),
        n => format!("yes ::= {yes} call{{1,{n}}} {observation}?"),
    });
    Ok(rules.join("\n") + "\n")
}

/// A GBNF string literal.
fn gbnf_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(gbnf_string("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    }

    /// The whole grammar of a one-tool registry, spelled out as it was
    /// before the protocol strings became constants: the text the model is
    /// constrained by must not drift.
    #[test]
    fn a_text_tools_grammar_is_the_protocol_spelled_out() {
        #![allow(clippy::unwrap_used)]
        let spec = ToolSpec {
            name: "Segment the Image".into(),
            description: "Segments.".into(),
            parameters: loragen_protocol::spec::text_schema(2),
        };
        let auto = call_grammar_with(
            std::slice::from_ref(&spec),
            &GrammarParams::default().with_max_calls(1),
        )
        .unwrap();
        assert_eq!(
            auto,
            concat!(
                r#"root ::= "Thought: Do I need to use a tool? " (yes | no)"#,
                "\n",
                r#"no ::= "No\nAI: " [^\n]{1,300} "\n""#,
                "\n",
                r#"t0-field ::= [^,\n]{1,64}"#,
                "\n",
                r#"t0-args ::= t0-field ", " [^\n]{1,96}"#,
                "\n",
                r#"t0-call ::= "Segment the Image" "\nAction Input: " t0-args "\n""#,
                "\n",
                r#"call ::= "Action: " (t0-call)"#,
                "\n",
                r#"yes ::= "Yes\n" call "Observation:"?"#,
                "\n",
            )
        );
        let three =
            call_grammar_with(&[spec], &GrammarParams::default().with_max_calls(3)).unwrap();
        assert!(
            three.contains(r#"yes ::= "Yes\n" call{1,3} "Observation:"?"#),
            "{three}"
        );
        let none = call_grammar_with(&[], &GrammarParams::default()).unwrap();
        assert!(
            none.starts_with(r#"root ::= "Thought: Do I need to use a tool? " no"#),
            "{none}"
        );
    }
}
