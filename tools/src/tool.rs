//! The `Tool` trait and its type-erased form.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ToolError;

/// A tool the agent can call. The argument schema is derived from `Args`
/// with schemars; a string-typed `Args` (e.g. [`TextInput`]) takes the raw
/// `Action Input` text, anything else takes it as JSON.
#[async_trait]
pub trait Tool: Send + Sync + 'static {
    type Args: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize;

    /// Unique name, as the model writes it after `Action:`.
    fn name(&self) -> String;
    /// What the tool is for and what its input holds.
    fn description(&self) -> String;
    async fn call(&self, args: Self::Args) -> Result<Self::Output, ToolError>;
}

/// The free-text input of a GPT4Tools-style tool: one string, with
/// `N` comma-separated fields when `N > 1`.
///
/// # Examples
///
/// ```
/// use loragen_tools::{async_trait, TextInput, Tool, ToolError, ToolRegistry};
///
/// struct Ask;
///
/// #[async_trait]
/// impl Tool for Ask {
///     type Args = TextInput<2>;
///     type Output = String;
///     fn name(&self) -> String {
///         "Answer Question About The Image".into()
///     }
///     fn description(&self) -> String {
///         "Its input is a comma separated string of two fields: the image path, then the question.".into()
///     }
///     async fn call(&self, input: TextInput<2>) -> Result<String, ToolError> {
///         let fields = input.fields();
///         Ok(format!("{} asks about {}", fields[1], fields[0]))
///     }
/// }
///
/// let registry = ToolRegistry::new().with(Ask)?;
/// let name = "Answer Question About The Image";
/// assert!(registry.prepare(name, "image.png").is_err(), "one field of two");
/// let call = registry.prepare(name, "image.png, what is in it, and where?")?;
/// let answer = tokio::runtime::Runtime::new()?.block_on(call.run())?;
/// // The last field keeps its commas.
/// assert_eq!(answer, "what is in it, and where? asks about image.png");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct TextInput<const N: usize = 1>(pub String);

impl<const N: usize> TextInput<N> {
    /// The comma-separated fields, trimmed; the last one keeps any further
    /// commas (free text such as a prompt may contain them).
    pub fn fields(&self) -> Vec<&str> {
        self.0.splitn(N.max(1), ',').map(str::trim).collect()
    }
}

impl<const N: usize> JsonSchema for TextInput<N> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("TextInput{N}").into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::Schema::try_from(loragen_protocol::spec::text_schema(N)).unwrap_or_default()
    }
}

/// A tool with its types erased, so tools of different types share a
/// registry: its arguments arrive as JSON already validated against its
/// spec's schema. [`Tool`]s get this form when registered; tools defined
/// elsewhere (e.g. by an MCP server) implement it directly.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// use loragen_tools::{async_trait, JsonTool, ToolError, ToolRegistry, ToolSpec};
/// use serde_json::{json, Value};
///
/// /// A tool whose implementation lives elsewhere, here an echo.
/// struct Echo;
///
/// #[async_trait]
/// impl JsonTool for Echo {
///     async fn call_json(&self, args: Value) -> Result<Value, ToolError> {
///         Ok(args["text"].clone())
///     }
/// }
///
/// let spec = ToolSpec {
///     name: "echo".into(),
///     description: "Says the text back.".into(),
///     parameters: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
/// };
/// let mut registry = ToolRegistry::new();
/// registry.register_json(spec, Arc::new(Echo))?;
/// assert!(registry.can_run("echo"));
/// let call = registry.prepare("echo", r#"{"text": "hi"}"#)?;
/// assert_eq!(tokio::runtime::Runtime::new()?.block_on(call.run())?, json!("hi"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait]
pub trait JsonTool: Send + Sync {
    async fn call_json(&self, args: Value) -> Result<Value, ToolError>;
}

pub(crate) struct Erased<T>(pub T);

#[async_trait]
impl<T: Tool> JsonTool for Erased<T> {
    async fn call_json(&self, args: Value) -> Result<Value, ToolError> {
        let name = self.0.name();
        let args: T::Args = serde_json::from_value(args).map_err(|e| ToolError::InvalidArgs {
            tool: name.clone(),
            message: e.to_string(),
        })?;
        let output = self.0.call(args).await?;
        serde_json::to_value(output).map_err(|e| {
            ToolError::Failed(format!("tool `{name}` returned unserialisable output: {e}"))
        })
    }
}
