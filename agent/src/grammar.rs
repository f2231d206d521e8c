//! The call grammar of a registry (GBNF): the model may only name
//! registered tools, and each tool's input must fit its schema. With it the
//! edge model calls tools correctly even when their definitions are not in
//! its context.

use loragen_tools::{InputKind, ToolRegistry};

use crate::error::{Error, Result};

/// A grammar for one GPT4Tools/ReAct message: either a call of a
/// registered tool or a direct answer.
pub fn call_grammar(tools: &ToolRegistry) -> Result<String> {
    let mut rules = vec![
        r#"root ::= "Thought: Do I need to use a tool? " (yes | no)"#.to_owned(),
        r#"no ::= "No\nAI: " [^\n]{1,300} "\n""#.to_owned(),
    ];
    if tools.is_empty() {
        rules[0] = r#"root ::= "Thought: Do I need to use a tool? " no"#.to_owned();
        return Ok(rules.join("\n") + "\n");
    }
    let mut alternatives = Vec::new();
    for (i, spec) in tools.specs().enumerate() {
        let prefix = format!("t{i}-");
        let args = match spec.input_kind() {
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
                let schema =
                    serde_json::to_string(&spec.parameters).map_err(|e| Error::Grammar {
                        detail: e.to_string(),
                    })?;
                let gbnf =
                    llama_cpp_2::json_schema_to_grammar(&schema).map_err(|e| Error::Grammar {
                        detail: format!("schema of `{}`: {e}", spec.name),
                    })?;
                rules.push(prefix_rules(&gbnf, &prefix));
                format!("{prefix}root")
            }
        };
        rules.push(format!(
            r#"{prefix}call ::= {} "\nAction Input: " {args} "\n""#,
            gbnf_string(&spec.name)
        ));
        alternatives.push(format!("{prefix}call"));
    }
    rules.push(format!(
        r#"yes ::= "Yes\nAction: " ({})"#,
        alternatives.join(" | ")
    ));
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

/// Prefixes every rule name (definitions and references) so grammars of
/// several tools can live in one file. Literals and character classes are
/// copied untouched.
fn prefix_rules(gbnf: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(gbnf.len() * 2);
    let mut chars = gbnf.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == '\\' {
                        if let Some(e) = chars.next() {
                            out.push(e);
                        }
                    } else if d == close {
                        break;
                    }
                }
            }
            '#' => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                let mut name = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '-' || d == '_' {
                        name.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                // Repetition counts like {1,3} are digits, not names.
                if name.chars().all(|d| d.is_ascii_digit()) {
                    out.push_str(&name);
                } else {
                    out.push_str(prefix);
                    out.push_str(&name);
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_are_prefixed_but_literals_are_not() {
        let g = "root ::= \"a-b\" space item{1,3} [a-z\\]]\nspace ::= \" \"?\nitem ::= [0-9]+ # comment root\n";
        let p = prefix_rules(g, "t0-");
        assert_eq!(p, "t0-root ::= \"a-b\" t0-space t0-item{1,3} [a-z\\]]\nt0-space ::= \" \"?\nt0-item ::= [0-9]+ \n");
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(gbnf_string("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    }
}
