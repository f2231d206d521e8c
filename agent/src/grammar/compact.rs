//! A compact GBNF grammar for JSON values of a JSON Schema, written here
//! rather than taken from llama.cpp's converter. llama.cpp's grammar lets
//! the model pad JSON with whitespace, and the small edge model does, for
//! up to the token limit; this one admits no whitespace at all:
//!
//! - object keys in schema order, the required ones first, then the
//!   optional ones, each of which may be left out;
//! - only declared properties, unless the object declares none;
//! - strings of bounded length (`maxLength`, else [`CompactLimits`]);
//! - JSON numbers with a bounded digit count, enums and consts exactly;
//! - nested objects, arrays (`minItems`/`maxItems`), `anyOf`/`oneOf`,
//!   type lists, and local `$ref`s (recursive ones too).
//!
//! A keyword that would change which values are valid and that the grammar
//! cannot enforce (`pattern`, numeric bounds other than `minimum: 0`,
//! `allOf`, ...) is an error naming the keyword: never a silent fallback.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::gbnf_string;

/// Bounds the grammar puts where the schema sets none, so that every call
/// finishes within the agent's token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactLimits {
    /// Longest string, in characters. The default, 96, covers 99% of the
    /// argument strings in BFCL's answers (p99 59, longest 224) while a
    /// runaway string still ends well within a call's token budget.
    pub max_string: usize,
    /// Most array items.
    pub max_items: usize,
    /// Most digits in a number's integer part, fraction and exponent.
    pub max_digits: usize,
}

impl Default for CompactLimits {
    fn default() -> Self {
        CompactLimits {
            max_string: 96,
            max_items: 16,
            max_digits: 15,
        }
    }
}

/// Keywords that only annotate: they do not change which values are valid.
const ANNOTATIONS: [&str; 9] = [
    "description",
    "title",
    "default",
    "examples",
    "format",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
];

/// Rules for the compact JSON values of `schema`, every rule name starting
/// with `prefix`; returns the rules and the name of the value rule. A
/// schema it cannot express is an `Err` naming the keyword and where it is.
pub fn schema_rules(
    schema: &Value,
    prefix: &str,
    limits: CompactLimits,
) -> Result<(Vec<String>, String), String> {
    let mut b = Builder {
        prefix,
        limits,
        root: schema,
        rules: Vec::new(),
        refs: HashMap::new(),
        generic: None,
    };
    let value = b.value(schema, "the parameters")?;
    let root = format!("{prefix}value");
    b.rules.push(format!("{root} ::= {value}"));
    Ok((b.rules, root))
}

struct Builder<'a> {
    prefix: &'a str,
    limits: CompactLimits,
    root: &'a Value,
    rules: Vec<String>,
    /// `$ref` target -> its rule, made once (so recursion terminates).
    refs: HashMap<String, String>,
    /// The rule for any JSON value, made on first use.
    generic: Option<String>,
}

impl<'a> Builder<'a> {
    fn rule(&mut self, body: String) -> String {
        let name = format!("{}r{}", self.prefix, self.rules.len());
        self.rules.push(format!("{name} ::= {body}"));
        name
    }

    /// A GBNF expression for the values of `schema`, found at `at`.
    fn value(&mut self, schema: &Value, at: &str) -> Result<String, String> {
        let obj = match schema {
            Value::Bool(true) => return Ok(self.any_value()),
            Value::Bool(false) => return Err(format!("{at} is `false`: no value is valid")),
            Value::Object(obj) => obj,
            _ => return Err(format!("{at} is not a schema object")),
        };
        if let Some(target) = obj.get("$ref") {
            return self.reference(target, at);
        }
        if let Some(values) = obj.get("enum") {
            let Some(values) = values.as_array().filter(|v| !v.is_empty()) else {
                return Err(format!("`enum` of {at} is not a non-empty list"));
            };
            return Ok(alternatives(values.iter().map(literal)));
        }
        if let Some(value) = obj.get("const") {
            return Ok(literal(value));
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(options) = obj.get(keyword) {
                let Some(options) = options.as_array().filter(|v| !v.is_empty()) else {
                    return Err(format!("`{keyword}` of {at} is not a non-empty list"));
                };
                let exprs = options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| self.value(o, &format!("{keyword}[{i}] of {at}")))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(alternatives(exprs));
            }
        }
        if let Some(all) = obj.get("allOf") {
            return match all.as_array().map(Vec::as_slice) {
                Some([one]) => self.value(one, at),
                _ => Err(format!(
                    "`allOf` of {at} (more than one schema) is not supported"
                )),
            };
        }
        match obj.get("type") {
            None if obj.contains_key("properties") => self.typed("object", obj, at),
            None => {
                self.check_keywords(obj, &[], at)?;
                Ok(self.any_value())
            }
            Some(Value::String(t)) => self.typed(t, obj, at),
            Some(Value::Array(types)) => {
                let exprs = types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some(t) => self.typed(t, obj, at),
                        None => Err(format!("`type` of {at} lists a non-string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(alternatives(exprs))
            }
            Some(_) => Err(format!("`type` of {at} is neither a string nor a list")),
        }
    }

    /// Refuses keywords that constrain values beyond what is handled.
    fn check_keywords(
        &self,
        obj: &Map<String, Value>,
        handled: &[&str],
        at: &str,
    ) -> Result<(), String> {
        for key in obj.keys() {
            let known = ANNOTATIONS.contains(&key.as_str())
                || handled.contains(&key.as_str())
                || ["type", "$defs", "definitions"].contains(&key.as_str());
            if !known {
                return Err(format!(
                    "`{key}` in {at} cannot be expressed in the compact call grammar"
                ));
            }
        }
        Ok(())
    }

    fn typed(&mut self, t: &str, obj: &Map<String, Value>, at: &str) -> Result<String, String> {
        let digits = self.limits.max_digits;
        match t {
            "string" => {
                self.check_keywords(obj, &["minLength", "maxLength"], at)?;
                let min = usize_of(obj, "minLength", at)?.unwrap_or(0);
                let max = usize_of(obj, "maxLength", at)?.unwrap_or(self.limits.max_string);
                if min > max {
                    return Err(format!("{at}: minLength {min} exceeds maxLength {max}"));
                }
                Ok(self.string_rule(min, max))
            }
            "integer" | "number" => {
                self.check_keywords(obj, &["minimum"], at)?;
                let sign = match obj.get("minimum") {
                    None => "\"-\"? ",
                    Some(m) if m.as_f64() == Some(0.0) => "",
                    Some(m) => {
                        return Err(format!(
                            "`minimum: {m}` in {at} cannot be expressed in the compact call grammar (only 0 can)"
                        ))
                    }
                };
                if t == "integer" {
                    Ok(format!("{sign}{}", integer(digits)))
                } else {
                    Ok(format!("{sign}{}", unsigned_number(digits)))
                }
            }
            "boolean" => {
                self.check_keywords(obj, &[], at)?;
                Ok("(\"true\" | \"false\")".into())
            }
            "null" => {
                self.check_keywords(obj, &[], at)?;
                Ok("\"null\"".into())
            }
            "array" => self.array(obj, at),
            "object" => self.object(obj, at),
            other => Err(format!("{at} has the unknown type `{other}`")),
        }
    }

    fn array(&mut self, obj: &Map<String, Value>, at: &str) -> Result<String, String> {
        self.check_keywords(obj, &["items", "minItems", "maxItems"], at)?;
        let item = match obj.get("items") {
            Some(items) => self.value(items, &format!("the items of {at}"))?,
            None => self.any_value(),
        };
        let item = self.rule(item);
        let min = usize_of(obj, "minItems", at)?.unwrap_or(0);
        let max = usize_of(obj, "maxItems", at)?.unwrap_or(self.limits.max_items);
        if min > max {
            return Err(format!("{at}: minItems {min} exceeds maxItems {max}"));
        }
        if max == 0 {
            return Ok("\"[]\"".into());
        }
        let items = format!(
            "{item}{}",
            repeat(&format!("\",\" {item}"), min.saturating_sub(1), max - 1)
        );
        Ok(if min == 0 {
            format!("\"[\" ({items})? \"]\"")
        } else {
            format!("\"[\" {items} \"]\"")
        })
    }

    fn object(&mut self, obj: &Map<String, Value>, at: &str) -> Result<String, String> {
        self.check_keywords(obj, &["properties", "required", "additionalProperties"], at)?;
        let empty = Map::new();
        let properties = match obj.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(format!("`properties` of {at} is not an object")),
            None => &empty,
        };
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(format!("`required` of {at} is not a list")),
        };
        if let Some(missing) = required.iter().find(|r| !properties.contains_key(**r)) {
            return Err(format!(
                "{at} requires `{missing}`, which it does not declare"
            ));
        }
        let extra = obj.get("additionalProperties");
        if properties.is_empty() {
            // A map: any keys, values of the additionalProperties schema.
            let value = match extra {
                None | Some(Value::Bool(true)) => self.any_value(),
                Some(Value::Bool(false)) => return Ok("\"{}\"".into()),
                Some(schema) => {
                    self.value(schema, &format!("the additional properties of {at}"))?
                }
            };
            let key = self.string_rule(1, self.limits.max_string);
            let pair = self.rule(format!("{key} \":\" {value}"));
            let more = repeat(
                &format!("\",\" {pair}"),
                0,
                self.limits.max_items.saturating_sub(1),
            );
            return Ok(format!("\"{{\" ({pair}{more})? \"}}\""));
        }
        if matches!(extra, Some(v) if v != &Value::Bool(false)) {
            return Err(format!(
                "`additionalProperties` beside declared properties in {at} cannot be expressed in the compact call grammar"
            ));
        }
        let mut pairs = Vec::new();
        for (name, schema) in properties {
            let value = self.value(schema, &format!("property `{name}` of {at}"))?;
            let key = gbnf_string(&format!("{}:", Value::String(name.clone())));
            pairs.push((required.contains(&name.as_str()), format!("{key} {value}")));
        }
        let (req, opt): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(r, _)| *r);
        let req: Vec<String> = req.into_iter().map(|(_, p)| self.rule(p)).collect();
        let opt: Vec<String> = opt.into_iter().map(|(_, p)| self.rule(p)).collect();
        // tails[i]: optional pairs i.. each present or not, comma-led.
        let mut tails = vec![String::new(); opt.len() + 1];
        for i in (0..opt.len()).rev() {
            tails[i] = if tails[i + 1].is_empty() {
                self.rule(format!("(\",\" {})?", opt[i]))
            } else {
                self.rule(format!("(\",\" {})? {}", opt[i], tails[i + 1]))
            };
        }
        let body = if req.is_empty() {
            // No required key: the first present optional pair leads.
            let firsts: Vec<String> = (0..opt.len())
                .map(|i| format!("{} {}", opt[i], tails[i + 1]).trim_end().to_owned())
                .collect();
            format!("({})?", firsts.join(" | "))
        } else {
            format!("{} {}", req.join(" \",\" "), tails[0])
                .trim_end()
                .to_owned()
        };
        Ok(format!("\"{{\" {body} \"}}\""))
    }

    fn reference(&mut self, target: &Value, at: &str) -> Result<String, String> {
        let Some(target) = target.as_str() else {
            return Err(format!("`$ref` of {at} is not a string"));
        };
        if let Some(rule) = self.refs.get(target) {
            return Ok(rule.clone());
        }
        let Some(schema) = target
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer))
        else {
            return Err(format!(
                "`$ref: {target}` in {at} does not point into this schema"
            ));
        };
        let name = format!("{}ref{}", self.prefix, self.refs.len());
        self.refs.insert(target.to_owned(), name.clone());
        let body = self.value(schema, target)?;
        self.rules.push(format!("{name} ::= {body}"));
        Ok(name)
    }

    /// A JSON string of `min..=max` characters, as a rule of its own:
    /// llama.cpp caps the product of nested repetitions within one rule at
    /// 2,000, so a bounded string never sits inline in a repeated group.
    fn string_rule(&mut self, min: usize, max: usize) -> String {
        let char = format!("{}char", self.prefix);
        let name = format!("{}str{min}-{max}", self.prefix);
        let rules = [
            format!(
                r#"{char} ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{{4}})"#
            ),
            format!(r#"{name} ::= "\"" {char}{{{min},{max}}} "\"""#),
        ];
        for rule in rules {
            if !self.rules.contains(&rule) {
                self.rules.push(rule);
            }
        }
        name
    }

    /// Any compact JSON value, for schemas that allow anything.
    fn any_value(&mut self) -> String {
        if let Some(name) = &self.generic {
            return name.clone();
        }
        let name = format!("{}any", self.prefix);
        self.generic = Some(name.clone());
        let (s, n, d) = (
            self.limits.max_string,
            self.limits.max_items.saturating_sub(1),
            self.limits.max_digits,
        );
        let string = self.string_rule(0, s);
        let more_items = repeat(&format!("\",\" {name}"), 0, n);
        let more_pairs = repeat(&format!("\",\" {string} \":\" {name}"), 0, n);
        self.rules.push(format!(
            "{name} ::= {name}-object | \"[\" ({name}{more_items})? \"]\" | {string} | {} | \"true\" | \"false\" | \"null\"",
            number(d)
        ));
        self.rules.push(format!(
            "{name}-object ::= \"{{\" ({string} \":\" {name}{more_pairs})? \"}}\""
        ));
        name
    }
}

/// `expr` repeated `min..=max` times, each led by a space; nothing when
/// `max` is 0 (llama.cpp's `{0,0}` is best not relied on).
fn repeat(expr: &str, min: usize, max: usize) -> String {
    if max == 0 {
        String::new()
    } else {
        format!(" ({expr}){{{min},{max}}}")
    }
}

/// A JSON integer without sign, at most `digits` digits.
fn integer(digits: usize) -> String {
    format!("(\"0\" | [1-9] [0-9]{{0,{}}})", digits.saturating_sub(1))
}

/// A JSON number without sign: integer part, fraction and exponent.
fn unsigned_number(digits: usize) -> String {
    format!(
        "{} (\".\" [0-9]{{1,{digits}}})? ([eE] [-+]? [0-9]{{1,3}})?",
        integer(digits)
    )
}

/// Any JSON number.
fn number(digits: usize) -> String {
    format!("\"-\"? {}", unsigned_number(digits))
}

fn usize_of(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<usize>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| format!("`{key}` of {at} is not a non-negative integer")),
    }
}

/// A value written as compact JSON, as a GBNF literal.
fn literal(value: &Value) -> String {
    gbnf_string(&value.to_string())
}

fn alternatives(exprs: impl IntoIterator<Item = String>) -> String {
    let exprs: Vec<String> = exprs.into_iter().collect();
    if exprs.len() == 1 {
        return exprs.into_iter().collect();
    }
    format!("({})", exprs.join(" | "))
}
