//! Converting the BFCL v4 data (from the `bfcl-eval` wheel) into the
//! generic format. Only the allowed files are converted by default; the
//! reserved held-out files are converted only on request, into their own
//! files, and nothing here looks at their answers beyond copying them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::generic::{AcceptedCall, Expect, Message, Query, ToolDef};

/// The pinned release of the data package.
pub const PACKAGE: &str = "bfcl-eval";
pub const VERSION: &str = "2026.3.23";

/// Files the project may train and validate on.
pub const ALLOWED: [&str; 8] = [
    "BFCL_v4_live_simple.json",
    "BFCL_v4_live_multiple.json",
    "BFCL_v4_live_parallel.json",
    "BFCL_v4_live_parallel_multiple.json",
    "BFCL_v4_live_irrelevance.json",
    "BFCL_v4_live_relevance.json",
    "BFCL_v4_simple_java.json",
    "BFCL_v4_simple_javascript.json",
];

/// Held-out evaluation files: never trained, tuned or selected on.
pub const RESERVED: [&str; 5] = [
    "BFCL_v4_simple_python.json",
    "BFCL_v4_multiple.json",
    "BFCL_v4_parallel.json",
    "BFCL_v4_parallel_multiple.json",
    "BFCL_v4_irrelevance.json",
];

const DATA_DIR: &str = "bfcl_eval/data/";

/// Queries with the tools they use.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    pub tools: Vec<ToolDef>,
    pub queries: Vec<Query>,
}

/// What a conversion did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub per_file: BTreeMap<String, usize>,
    pub skipped: Vec<(String, String)>,
    pub renamed_types: BTreeMap<String, usize>,
}

/// One raw item: id, messages, functions and accepted calls.
struct RawItem {
    file: &'static str,
    id: String,
    messages: Vec<Message>,
    functions: Vec<ToolDef>,
    answers: Option<Vec<AcceptedCall>>,
}

/// Reads `files` from the wheel at `wheel`.
fn read_items(wheel: &Path, files: &[&'static str], summary: &mut Summary) -> Result<Vec<RawItem>> {
    let f = std::fs::File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| Error::Bfcl(format!("{} is not a wheel: {e}", wheel.display())))?;
    let mut member = |name: &str| -> Result<Option<String>> {
        let mut entry = match zip.by_name(name) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(Error::Bfcl(format!("{name}: {e}"))),
        };
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| Error::Bfcl(format!("{name}: {e}")))?;
        Ok(Some(text))
    };
    let mut items = Vec::new();
    for &file in files {
        let text = member(&format!("{DATA_DIR}{file}"))?
            .ok_or_else(|| Error::Bfcl(format!("the wheel has no {DATA_DIR}{file}")))?;
        let answers = parse_answers(
            file,
            member(&format!("{DATA_DIR}possible_answer/{file}"))?.as_deref(),
        )?;
        let mut n = 0;
        for (line_no, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line)
                .map_err(|e| Error::Bfcl(format!("{file} line {}: {e}", line_no + 1)))?;
            match raw_item(file, &v, &answers, summary) {
                Ok(item) => {
                    items.push(item);
                    n += 1;
                }
                Err(why) => summary
                    .skipped
                    .push((v["id"].as_str().unwrap_or("?").to_owned(), why)),
            }
        }
        summary.per_file.insert(file.to_owned(), n);
    }
    Ok(items)
}

fn parse_answers(file: &str, text: Option<&str>) -> Result<HashMap<String, Vec<AcceptedCall>>> {
    let mut out = HashMap::new();
    for (i, line) in text
        .unwrap_or_default()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::Bfcl(format!("answers of {file} line {}: {e}", i + 1)))?;
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let mut calls = Vec::new();
        for call in v["ground_truth"].as_array().into_iter().flatten() {
            for (name, args) in call.as_object().into_iter().flatten() {
                let arguments = args
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, accepted)| {
                        (
                            k.clone(),
                            accepted
                                .as_array()
                                .cloned()
                                .unwrap_or_else(|| vec![accepted.clone()]),
                        )
                    })
                    .collect();
                calls.push(AcceptedCall {
                    name: name.clone(),
                    alternatives: Vec::new(),
                    arguments,
                });
            }
        }
        out.insert(id, calls);
    }
    Ok(out)
}

fn raw_item(
    file: &'static str,
    v: &Value,
    answers: &HashMap<String, Vec<AcceptedCall>>,
    summary: &mut Summary,
) -> std::result::Result<RawItem, String> {
    let id = v["id"].as_str().ok_or("no id")?.to_owned();
    let turns = v["question"].as_array().ok_or("no question")?;
    if turns.len() != 1 {
        return Err(format!(
            "{} turns; only single-turn items are converted",
            turns.len()
        ));
    }
    let messages = turns[0]
        .as_array()
        .ok_or("a turn is not a list")?
        .iter()
        .map(|m| Message {
            role: m["role"].as_str().unwrap_or("user").to_owned(),
            content: m["content"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let functions = v["function"]
        .as_array()
        .ok_or("no functions")?
        .iter()
        .map(|f| {
            Ok(ToolDef {
                id: None,
                name: f["name"]
                    .as_str()
                    .ok_or("a function has no name")?
                    .to_owned(),
                description: f["description"].as_str().unwrap_or_default().to_owned(),
                parameters: normalise_schema(&f["parameters"], &mut summary.renamed_types),
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    if functions.is_empty() {
        return Err("no functions".into());
    }
    for f in &functions {
        jsonschema::validator_for(&f.parameters)
            .map_err(|e| format!("schema of `{}`: {e}", f.name))?;
    }
    let answers = if file.contains("irrelevance") || file.contains("relevance") {
        None
    } else {
        Some(answers.get(&id).cloned().ok_or("no ground truth")?)
    };
    Ok(RawItem {
        file,
        id,
        messages,
        functions,
        answers,
    })
}

/// BFCL's JSON-Schema-like types as real JSON Schema: `dict` is `object`,
/// `float` is `number`, `tuple` is `array`, Java and JavaScript type names
/// map to their JSON types, and `any` (or an unknown type) drops the
/// constraint.
pub fn normalise_schema(schema: &Value, renamed: &mut BTreeMap<String, usize>) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "type" => {
                let raw = v.as_str().unwrap_or_default();
                let mapped = match raw {
                    "string" | "integer" | "number" | "boolean" | "array" | "object" | "null" => {
                        Some(raw)
                    }
                    "dict" | "HashMap" | "Map" => Some("object"),
                    "float" | "double" | "Double" | "Float" => Some("number"),
                    "tuple" | "Array" | "ArrayList" | "List" => Some("array"),
                    "String" | "char" | "Character" => Some("string"),
                    "long" | "int" | "Integer" | "Long" | "short" | "byte" => Some("integer"),
                    "Boolean" | "bool" => Some("boolean"),
                    _ => None,
                };
                if mapped != Some(raw) {
                    *renamed
                        .entry(if raw.is_empty() {
                            v.to_string()
                        } else {
                            raw.to_owned()
                        })
                        .or_default() += 1;
                }
                if let Some(t) = mapped {
                    out.insert(k.clone(), Value::String(t.to_owned()));
                }
            }
            "properties" => {
                let props = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), normalise_schema(s, renamed)))
                    .collect();
                out.insert(k.clone(), Value::Object(props));
            }
            "items" | "additionalProperties" => {
                out.insert(k.clone(), normalise_schema(v, renamed));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Gives every distinct definition a unique id (the name, or `name#2`, …
/// when BFCL defines the same name differently in different items) and
/// turns the items into queries.
fn to_generic(items: &[&RawItem]) -> Converted {
    let mut ids: HashMap<String, String> = HashMap::new(); // canonical definition -> id
    let mut per_name: HashMap<String, usize> = HashMap::new();
    let mut tools = Vec::new();
    let mut queries = Vec::new();
    for item in items {
        let mut keys = Vec::new();
        for f in &item.functions {
            let canonical = serde_json::to_string(&f).unwrap_or_default();
            let id = ids
                .entry(canonical)
                .or_insert_with(|| {
                    let n = per_name.entry(f.name.clone()).or_default();
                    *n += 1;
                    let id = if *n == 1 {
                        f.name.clone()
                    } else {
                        format!("{}#{n}", f.name)
                    };
                    tools.push(ToolDef {
                        id: (*n > 1).then(|| id.clone()),
                        ..f.clone()
                    });
                    id
                })
                .clone();
            keys.push(id);
        }
        let expect = match (&item.answers, item.file.contains("irrelevance")) {
            (_, true) => Expect::NoCall,
            (None, false) => Expect::AnyCall,
            (Some(_), false) => Expect::Calls,
        };
        queries.push(Query {
            id: item.id.clone(),
            messages: item.messages.clone(),
            tools: Some(keys),
            expect: Some(expect),
            answers: item.answers.clone().unwrap_or_default(),
        });
    }
    Converted { tools, queries }
}

/// The allowed files split by function set: items that share a function
/// name are kept together, and whole groups go to validation (chosen at
/// random with `seed`) until it holds about `val_share` of the items, so
/// no validation tool name appears in training.
pub fn convert_allowed(
    wheel: &Path,
    val_share: f64,
    seed: u64,
) -> Result<(Converted, Converted, Summary)> {
    if !(0.0..1.0).contains(&val_share) {
        return Err(Error::Config(format!(
            "val share must be within 0..1, got {val_share}"
        )));
    }
    let mut summary = Summary::default();
    let items = read_items(wheel, &ALLOWED, &mut summary)?;
    let groups = group_by_shared_names(&items);
    let mut order: Vec<&Vec<usize>> = groups.values().collect();
    order.sort();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let target = (items.len() as f64 * val_share).round() as usize;
    let mut val = HashSet::new();
    for group in order {
        if val.len() + group.len() <= target {
            val.extend(group.iter().copied());
        }
    }
    let pick = |in_val: bool| -> Vec<&RawItem> {
        items
            .iter()
            .enumerate()
            .filter(|(i, _)| val.contains(i) == in_val)
            .map(|(_, it)| it)
            .collect()
    };
    Ok((to_generic(&pick(false)), to_generic(&pick(true)), summary))
}

/// The reserved files, for held-out evaluation only.
pub fn convert_reserved(wheel: &Path) -> Result<(Converted, Summary)> {
    let mut summary = Summary::default();
    let items = read_items(wheel, &RESERVED, &mut summary)?;
    let refs: Vec<&RawItem> = items.iter().collect();
    Ok((to_generic(&refs), summary))
}

/// Connected groups of items linked by a shared function name.
fn group_by_shared_names(items: &[RawItem]) -> BTreeMap<usize, Vec<usize>> {
    let mut parent: Vec<usize> = (0..items.len()).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut first_with: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        for f in &item.functions {
            match first_with.get(f.name.as_str()) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
                None => {
                    first_with.insert(&f.name, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..items.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bfcl_types_become_json_schema() {
        let mut renamed = BTreeMap::new();
        let s = normalise_schema(
            &json!({"type": "dict", "required": ["a"], "properties": {
                "a": {"type": "float"}, "b": {"type": "tuple", "items": {"type": "String"}}, "c": {"type": "any", "description": "x"}}}),
            &mut renamed,
        );
        assert_eq!(
            s,
            json!({"type": "object", "required": ["a"], "properties": {
                "a": {"type": "number"}, "b": {"type": "array", "items": {"type": "string"}}, "c": {"description": "x"}}})
        );
        assert_eq!(
            renamed.keys().collect::<Vec<_>>(),
            ["String", "any", "dict", "float", "tuple"]
        );
        assert!(jsonschema::validator_for(&s).is_ok());
    }

    /// A wheel with one small item per allowed file (two tools shared by
    /// several items, so they must stay on one side) and a reserved file.
    fn fake_wheel(dir: &Path) -> std::path::PathBuf {
        use std::io::Write;
        let path = dir.join("bfcl_eval-0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        let schema = json!({"type": "dict", "required": ["city"], "properties": {"city": {"type": "string"}}});
        for (i, file) in ALLOWED.iter().chain(RESERVED.iter()).enumerate() {
            let stem = file
                .trim_start_matches("BFCL_v4_")
                .trim_end_matches(".json");
            let mut lines = String::new();
            let mut answers = String::new();
            for j in 0..4 {
                let name = if j % 2 == 0 {
                    "shared_weather".to_owned()
                } else {
                    format!("fn_{i}_{j}")
                };
                let id = format!("{stem}_{j}-0-0");
                let item = json!({"id": id, "question": [[{"role": "user", "content": format!("ask {i} {j}")}]],
                                  "function": [{"name": name, "description": "d", "parameters": schema}]});
                lines.push_str(&format!("{item}\n"));
                answers.push_str(&format!(
                    "{}\n",
                    json!({"id": id, "ground_truth": [{name: {"city": ["Oslo"]}}]})
                ));
            }
            zip.start_file(format!("{DATA_DIR}{file}"), opts).unwrap();
            zip.write_all(lines.as_bytes()).unwrap();
            if !file.contains("relevance") {
                zip.start_file(format!("{DATA_DIR}possible_answer/{file}"), opts)
                    .unwrap();
                zip.write_all(answers.as_bytes()).unwrap();
            }
        }
        zip.finish().unwrap();
        path
    }

    #[test]
    fn allowed_files_split_by_function_set_and_reserved_files_stay_out() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = fake_wheel(dir.path());
        let (train, val, summary) = convert_allowed(&wheel, 0.3, 1).unwrap();
        assert_eq!(summary.per_file.len(), ALLOWED.len());
        assert_eq!(train.queries.len() + val.queries.len(), 4 * ALLOWED.len());
        assert!(!val.queries.is_empty());
        let names = |c: &Converted| {
            c.tools
                .iter()
                .map(|t| t.name.clone())
                .collect::<HashSet<_>>()
        };
        assert!(
            names(&train).is_disjoint(&names(&val)),
            "a validation tool is seen in training"
        );
        assert!(
            names(&train).contains("shared_weather"),
            "the big shared group stays in training"
        );
        let all: Vec<&Query> = train.queries.iter().chain(&val.queries).collect();
        assert!(all
            .iter()
            .all(|q| !q.id.starts_with("simple_python") && !q.id.starts_with("multiple_")));
        let irrelevant = all
            .iter()
            .find(|q| q.id.starts_with("live_irrelevance"))
            .unwrap();
        assert_eq!(irrelevant.expect, Some(Expect::NoCall));
        let simple = all
            .iter()
            .find(|q| q.id.starts_with("live_simple"))
            .unwrap();
        assert_eq!(simple.expect, Some(Expect::Calls));
        assert_eq!(simple.answers[0].arguments["city"], vec![json!("Oslo")]);
        let (reserved, _) = convert_reserved(&wheel).unwrap();
        assert_eq!(reserved.queries.len(), 4 * RESERVED.len());
    }

    #[test]
    fn reserved_and_allowed_lists_are_disjoint() {
        assert!(ALLOWED.iter().all(|a| !RESERVED.contains(a)));
    }
}
