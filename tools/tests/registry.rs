//! Schemas, validation, import/export and fingerprints of the registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use loragen_protocol::render::{fingerprint, system_prompt};
use loragen_protocol::spec::{from_openai_json, to_openai_json};
use loragen_tools::{
    async_trait, Error, InputKind, TextInput, Tool, ToolError, ToolRegistry, ToolSpec,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize, JsonSchema)]
struct WeatherArgs {
    /// City name.
    city: String,
    /// Days ahead, 0 to 7.
    #[schemars(range(min = 0, max = 7))]
    days: Option<u8>,
}

struct Weather;

#[async_trait]
impl Tool for Weather {
    type Args = WeatherArgs;
    type Output = String;
    fn name(&self) -> String {
        "weather".into()
    }
    fn description(&self) -> String {
        "Forecast for a city.".into()
    }
    async fn call(&self, args: WeatherArgs) -> Result<String, ToolError> {
        Ok(format!(
            "sunny in {} for {} days",
            args.city,
            args.days.unwrap_or(0)
        ))
    }
}

struct Caption;

#[async_trait]
impl Tool for Caption {
    type Args = TextInput;
    type Output = String;
    fn name(&self) -> String {
        "Get Photo Description".into()
    }
    fn description(&self) -> String {
        "Describes a picture. Input: the image path.".into()
    }
    async fn call(&self, args: TextInput) -> Result<String, ToolError> {
        Ok(format!("a photo at {}", args.0))
    }
}

fn registry() -> ToolRegistry {
    ToolRegistry::new()
        .with(Weather)
        .and_then(|r| r.with(Caption))
        .unwrap()
}

#[test]
fn schema_is_derived_by_schemars() {
    let r = registry();
    let spec = r.spec("weather").unwrap();
    assert_eq!(spec.parameters["type"], "object");
    assert_eq!(spec.parameters["properties"]["city"]["type"], "string");
    assert_eq!(spec.parameters["required"], json!(["city"]));
    assert!(spec.parameters.get("$schema").is_none());
    assert_eq!(spec.input_kind(), InputKind::Json);
    assert_eq!(
        r.spec("Get Photo Description").unwrap().input_kind(),
        InputKind::Text { fields: 1 }
    );
}

#[test]
fn duplicate_and_malformed_names_are_rejected() {
    let mut r = registry();
    assert!(matches!(r.register(Weather), Err(Error::DuplicateName(n)) if n == "weather"));
    let bad = ToolSpec {
        name: "a,b".into(),
        description: String::new(),
        parameters: json!({}),
    };
    assert!(matches!(r.register_spec(bad), Err(Error::BadName(_))));
    let broken = ToolSpec {
        name: "broken".into(),
        description: String::new(),
        parameters: json!({"type": 12}),
    };
    assert!(matches!(
        r.register_spec(broken),
        Err(Error::BadSchema { .. })
    ));
}

#[test]
fn validation_names_the_field_and_the_problem() {
    let r = registry();
    let err = r.prepare("weather", r#"{"city": 3}"#).unwrap_err();
    let ToolError::InvalidArgs { tool, message } = err else {
        panic!("{err}")
    };
    assert_eq!(tool, "weather");
    assert!(
        message.contains("/city") && message.contains("string"),
        "{message}"
    );
    let err = r
        .prepare("weather", r#"{"city": "Oslo", "days": 9}"#)
        .unwrap_err();
    assert!(err.to_string().contains("/days"), "{err}");
    let err = r.prepare("weather", r#"{"days": 1}"#).unwrap_err();
    assert!(err.to_string().contains("city"), "{err}");
    assert!(matches!(
        r.prepare("rain", "{}"),
        Err(ToolError::UnknownTool { .. })
    ));
}

#[tokio::test]
async fn valid_calls_run() {
    let r = registry();
    let out = r
        .prepare("weather", r#"{"city": "Oslo", "days": 2}"#)
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(out, json!("sunny in Oslo for 2 days"));
    let out = r
        .prepare("Get Photo Description", " image/abc.png ")
        .unwrap()
        .run()
        .await
        .unwrap();
    assert_eq!(out, json!("a photo at image/abc.png"));
}

#[tokio::test]
async fn imported_specs_round_trip_and_are_unavailable() {
    let text = to_openai_json(&registry().specs().cloned().collect::<Vec<_>>()).unwrap();
    let specs = from_openai_json(&text).unwrap();
    assert_eq!(specs.len(), 2);
    let mut imported = ToolRegistry::new();
    for s in specs {
        imported.register_spec(s).unwrap();
    }
    assert_eq!(imported.fingerprint(), registry().fingerprint());
    let err = imported
        .prepare("weather", r#"{"city": "Oslo"}"#)
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::Unavailable("weather".into()));
    assert!(from_openai_json("{\"not\": \"a list\"}").is_err());
    assert!(from_openai_json("[{\"function\": {}}]").is_err());
}

#[test]
fn fingerprint_ignores_key_order_but_not_descriptions() {
    let a = ToolSpec {
        name: "t".into(),
        description: "Does a thing.".into(),
        parameters: json!({"type": "object", "properties": {"x": {"type": "string"}, "y": {"type": "number"}}}),
    };
    let reordered: ToolSpec = serde_json::from_str(
        r#"{"parameters": {"properties": {"y": {"type": "number"}, "x": {"type": "string"}}, "type": "object"},
            "description": "Does a thing.", "name": "t"}"#,
    )
    .unwrap();
    let of = |spec: &ToolSpec| fingerprint(&system_prompt(std::slice::from_ref(spec)));
    // serde_json keeps object keys sorted, so the rendered text (what the
    // generator reads) and its fingerprint do not depend on a file's order.
    assert_eq!(of(&a), of(&reordered));
    assert_eq!(of(&a), of(&a.clone()));
    let mut changed = a.clone();
    changed.description = "Does another thing.".into();
    assert_ne!(of(&a), of(&changed));
    assert_eq!(of(&a).len(), 64);
}
