//! Run with: cargo run --release --example custom_tools -- "How many days are there from 2026-01-01 to 2026-03-15?"
//!
//! A developer registers three tools with real implementations (a
//! calculator, a unit converter and a date tool) and runs one query
//! through the agent on the default edge model, with constrained decoding
//! so every call names a registered tool with schema-valid arguments.

use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use loragen::agent::agent::{Agent, AgentConfig, Event};
use loragen::agent::runtime::{Model, SessionParams};
use loragen::agent::store::{ModelStore, Role};
use loragen::tools::{async_trait, Tool, ToolError, ToolRegistry};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
struct CalcArgs {
    /// An arithmetic expression such as `2 * (3 + 4) / 5`.
    expression: String,
}

struct Calculator;

#[async_trait]
impl Tool for Calculator {
    type Args = CalcArgs;
    type Output = f64;
    fn name(&self) -> String {
        "calculator".into()
    }
    fn description(&self) -> String {
        "Evaluates an arithmetic expression with + - * / ^ and parentheses.".into()
    }
    async fn call(&self, args: CalcArgs) -> Result<f64, ToolError> {
        evalexpr::eval_number(&args.expression)
            .map_err(|e| ToolError::Failed(format!("cannot evaluate: {e}")))
    }
}

#[derive(Deserialize, JsonSchema)]
struct ConvertArgs {
    value: f64,
    /// One of m, km, mi, ft, kg, lb, c, f.
    from: String,
    to: String,
}

struct UnitConverter;

/// Factor to the base unit of each dimension; temperatures are special.
fn factor(unit: &str) -> Option<(&'static str, f64)> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "m" => ("length", 1.0),
        "km" => ("length", 1000.0),
        "mi" => ("length", 1609.344),
        "ft" => ("length", 0.3048),
        "kg" => ("mass", 1.0),
        "lb" => ("mass", 0.453_592_37),
        _ => return None,
    })
}

#[async_trait]
impl Tool for UnitConverter {
    type Args = ConvertArgs;
    type Output = f64;
    fn name(&self) -> String {
        "convert_units".into()
    }
    fn description(&self) -> String {
        "Converts a value between units of length (m, km, mi, ft), mass (kg, lb) or temperature (c, f).".into()
    }
    async fn call(&self, a: ConvertArgs) -> Result<f64, ToolError> {
        match (
            a.from.to_ascii_lowercase().as_str(),
            a.to.to_ascii_lowercase().as_str(),
        ) {
            ("c", "f") => return Ok(a.value * 9.0 / 5.0 + 32.0),
            ("f", "c") => return Ok((a.value - 32.0) * 5.0 / 9.0),
            _ => {}
        }
        match (factor(&a.from), factor(&a.to)) {
            (Some((d1, f1)), Some((d2, f2))) if d1 == d2 => Ok(a.value * f1 / f2),
            _ => Err(ToolError::Failed(format!(
                "cannot convert {} to {}",
                a.from, a.to
            ))),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
struct DateArgs {
    /// First date, YYYY-MM-DD.
    start: String,
    /// Second date, YYYY-MM-DD.
    end: String,
}

struct Dates;

#[async_trait]
impl Tool for Dates {
    type Args = DateArgs;
    type Output = String;
    fn name(&self) -> String {
        "date_difference".into()
    }
    fn description(&self) -> String {
        "Counts the days between two dates and names their weekdays.".into()
    }
    async fn call(&self, a: DateArgs) -> Result<String, ToolError> {
        let parse = |s: &str| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|e| ToolError::Failed(format!("bad date {s:?}: {e}")))
        };
        let (start, end) = (parse(&a.start)?, parse(&a.end)?);
        Ok(format!(
            "{} days ({} to {})",
            (end - start).num_days(),
            start.weekday(),
            end.weekday()
        ))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let query = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 12.5 * (3 + 4.5)?".into());
    let tools = Arc::new(
        ToolRegistry::new()
            .with(Calculator)?
            .with(UnitConverter)?
            .with(Dates)?,
    );

    let store = ModelStore::from_env()?;
    let model = Model::load(store.resolve_role(Role::Edge)?)?;
    let session = model.session(SessionParams::default())?;
    // Tools with JSON arguments are shown with their schemas, and a
    // message may call several at once.
    let config = AgentConfig::default()
        .with_constrained(true)
        .with_max_steps(3);
    let mut agent = Agent::new(session, tools, config)?;

    println!("query: {query}");
    let outcome = agent
        .run(&query, &mut |event| {
            match event {
                Event::Action { tool, input } => println!("action: {tool} {input}"),
                Event::Observation { text, .. } => println!("observation: {text}"),
                Event::Answer(text) => println!("answer: {text}"),
                Event::StepDone { stats, tool_ms } => {
                    println!("  [{stats} | tool {tool_ms:.1} ms]")
                }
                Event::Thought(t) => println!("thought: {t}"),
                Event::Text(_) => {}
            }
            ControlFlow::Continue(())
        })
        .await?;
    println!("finished: {:?}", outcome.finish);
    Ok(())
}
