//! `ToolRegistry`: the ordered set of tools an agent may call, with their
//! argument validators compiled once.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result, ToolError};
use crate::tool::{Erased, JsonTool, Tool};
use loragen_protocol::{InputKind, ToolSpec};

struct Entry {
    spec: ToolSpec,
    validator: jsonschema::Validator,
    imp: Option<Arc<dyn JsonTool>>,
}

/// Tools in registration order. Names are unique.
///
/// # Examples
///
/// ```
/// use loragen_tools::{async_trait, Tool, ToolError, ToolRegistry};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct AddArgs {
///     a: i64,
///     b: i64,
/// }
///
/// struct Add;
///
/// #[async_trait]
/// impl Tool for Add {
///     type Args = AddArgs;
///     type Output = i64;
///     fn name(&self) -> String {
///         "add".into()
///     }
///     fn description(&self) -> String {
///         "Adds two integers.".into()
///     }
///     async fn call(&self, args: AddArgs) -> Result<i64, ToolError> {
///         Ok(args.a + args.b)
///     }
/// }
///
/// let registry = ToolRegistry::new().with(Add)?;
/// // Arguments are checked against the schema before the tool runs.
/// assert!(registry.prepare("add", r#"{"a": 2}"#).is_err());
/// let call = registry.prepare("add", r#"{"a": 2, "b": 3}"#)?;
/// let sum = tokio::runtime::Runtime::new()?.block_on(call.run())?;
/// assert_eq!(sum, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct ToolRegistry {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.spec.name))
            .finish()
    }
}

/// A call whose arguments passed validation.
#[derive(Clone)]
pub struct PreparedCall {
    pub tool: String,
    pub args: Value,
    imp: Option<Arc<dyn JsonTool>>,
}

impl std::fmt::Debug for PreparedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCall")
            .field("tool", &self.tool)
            .field("args", &self.args)
            .finish()
    }
}

impl PreparedCall {
    /// Runs the tool. Its output is returned as JSON.
    pub async fn run(self) -> Result<Value, ToolError> {
        match self.imp {
            Some(imp) => imp.call_json(self.args).await,
            None => Err(ToolError::Unavailable(self.tool)),
        }
    }
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool; its schema is derived from `T::Args`.
    pub fn register<T: Tool>(&mut self, tool: T) -> Result<()> {
        let schema = serde_json::to_value(schemars::schema_for!(T::Args))?;
        let spec = ToolSpec {
            name: tool.name(),
            description: tool.description(),
            parameters: clean_schema(schema),
        };
        self.insert(spec, Some(Arc::new(Erased(tool))))
    }

    /// Builder form of [`Self::register`].
    pub fn with<T: Tool>(mut self, tool: T) -> Result<Self> {
        self.register(tool)?;
        Ok(self)
    }

    /// A registry of tools known only by their specs (e.g. a benchmark
    /// item's tool list, or an OpenAI-style file read with
    /// [`loragen_protocol::spec::from_openai_json`]), for prompts and call
    /// grammars. Names must be unique, one line, without a comma.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_tools::{ToolRegistry, ToolSpec};
    ///
    /// let time = ToolSpec {
    ///     name: "get_time".into(),
    ///     description: "The current time in a city.".into(),
    ///     parameters: serde_json::json!({
    ///         "type": "object",
    ///         "properties": {"city": {"type": "string"}},
    ///         "required": ["city"]
    ///     }),
    /// };
    /// let registry = ToolRegistry::from_specs([time.clone()])?;
    /// assert_eq!(registry.len(), 1);
    /// assert!(!registry.can_run("get_time"), "a spec alone cannot run");
    /// assert!(ToolRegistry::from_specs([time.clone(), time]).is_err(), "duplicate name");
    /// # Ok::<(), loragen_tools::Error>(())
    /// ```
    pub fn from_specs(specs: impl IntoIterator<Item = ToolSpec>) -> Result<Self> {
        let mut registry = Self::new();
        for spec in specs {
            registry.register_spec(spec)?;
        }
        Ok(registry)
    }

    /// Adds a tool known only by its spec (e.g. imported from a file);
    /// calling it yields [`ToolError::Unavailable`].
    pub fn register_spec(&mut self, spec: ToolSpec) -> Result<()> {
        self.insert(spec, None)
    }

    /// Adds a tool given by its spec and a type-erased implementation
    /// (e.g. a tool of an MCP server).
    pub fn register_json(&mut self, spec: ToolSpec, imp: Arc<dyn JsonTool>) -> Result<()> {
        self.insert(spec, Some(imp))
    }

    fn insert(&mut self, spec: ToolSpec, imp: Option<Arc<dyn JsonTool>>) -> Result<()> {
        if spec.name.trim().is_empty()
            || spec.name.contains(['\n', ','])
            || spec.name != spec.name.trim()
        {
            return Err(Error::BadName(spec.name));
        }
        if self.index.contains_key(&spec.name) {
            return Err(Error::DuplicateName(spec.name));
        }
        let validator =
            jsonschema::validator_for(&spec.parameters).map_err(|e| Error::BadSchema {
                tool: spec.name.clone(),
                detail: e.to_string(),
            })?;
        self.index.insert(spec.name.clone(), self.entries.len());
        self.entries.push(Entry {
            spec,
            validator,
            imp,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.entries.iter().map(|e| &e.spec)
    }

    pub fn spec(&self, name: &str) -> Option<&ToolSpec> {
        self.index.get(name).map(|&i| &self.entries[i].spec)
    }

    /// Whether `name` is registered with an implementation (a tool known
    /// only by its spec answers [`ToolError::Unavailable`]).
    pub fn can_run(&self, name: &str) -> bool {
        self.index
            .get(name)
            .is_some_and(|&i| self.entries[i].imp.is_some())
    }

    /// The registry fingerprint ([`loragen_protocol::render::fingerprint`] of its
    /// [`loragen_protocol::render::system_prompt`]); keys compiled adapters,
    /// so any change to a name, description or schema gives a new one.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_tools::{ToolRegistry, ToolSpec};
    ///
    /// let time = ToolSpec {
    ///     name: "get_time".into(),
    ///     description: "The current time in a city.".into(),
    ///     parameters: serde_json::json!({
    ///         "type": "object",
    ///         "properties": {"city": {"type": "string"}},
    ///         "required": ["city"]
    ///     }),
    /// };
    /// let a = ToolRegistry::from_specs([time.clone()])?;
    /// let mut edited = time;
    /// edited.description = "The local time in a city.".into();
    /// let b = ToolRegistry::from_specs([edited])?;
    /// assert_eq!(a.fingerprint(), a.fingerprint());
    /// assert_ne!(a.fingerprint(), b.fingerprint());
    /// # Ok::<(), loragen_tools::Error>(())
    /// ```
    pub fn fingerprint(&self) -> String {
        let specs: Vec<ToolSpec> = self.specs().cloned().collect();
        loragen_protocol::render::fingerprint(&loragen_protocol::render::system_prompt(&specs))
    }

    /// Checks a call the model wrote: the tool must exist and `input` must
    /// satisfy its schema. Failures are messages the model can act on.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_tools::{ToolRegistry, ToolSpec};
    ///
    /// let time = ToolSpec {
    ///     name: "get_time".into(),
    ///     description: "The current time in a city.".into(),
    ///     parameters: serde_json::json!({
    ///         "type": "object",
    ///         "properties": {"city": {"type": "string"}},
    ///         "required": ["city"]
    ///     }),
    /// };
    /// let registry = ToolRegistry::from_specs([time])?;
    /// let call = registry.prepare("get_time", r#"{"city": "Tokyo"}"#)?;
    /// assert_eq!(call.args["city"], "Tokyo");
    /// let unknown = registry.prepare("get_weather", "{}").unwrap_err();
    /// assert_eq!(unknown.to_string(), "unknown tool `get_weather`; available tools: get_time");
    /// let missing = registry.prepare("get_time", "{}").unwrap_err();
    /// assert!(missing.to_string().contains("\"city\" is a required property"), "{missing}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prepare(&self, name: &str, input: &str) -> Result<PreparedCall, ToolError> {
        let name = name.trim();
        let Some(entry) = self.index.get(name).map(|&i| &self.entries[i]) else {
            let available = self
                .entries
                .iter()
                .map(|e| e.spec.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ToolError::UnknownTool {
                name: name.to_owned(),
                available,
            });
        };
        let invalid = |message: String| ToolError::InvalidArgs {
            tool: name.to_owned(),
            message,
        };
        let input = input.trim();
        let args = match entry.spec.input_kind() {
            InputKind::Text { fields } => {
                let got = input.split(',').filter(|f| !f.trim().is_empty()).count();
                if got < fields {
                    return Err(invalid(format!(
                        "expected {fields} comma-separated field(s), got {got}"
                    )));
                }
                Value::String(input.to_owned())
            }
            InputKind::Json => serde_json::from_str(input)
                .map_err(|e| invalid(format!("input is not valid JSON ({e})")))?,
        };
        let problems: Vec<String> = entry
            .validator
            .iter_errors(&args)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{at}`: {e}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        Ok(PreparedCall {
            tool: name.to_owned(),
            args,
            imp: entry.imp.clone(),
        })
    }
}

/// Drops the keys schemars adds for a standalone document.
fn clean_schema(mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}
