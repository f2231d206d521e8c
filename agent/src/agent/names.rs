//! How tool names are decoded and whether a message may, must or must not
//! call, decided before each model message: whole-name scoring, and a
//! compiled tool selector's prior over the names, its "no call" veto and
//! its required call (issue 29).
//! `bench gpt4tools`, `eval` and the agent loop all decide through a
//! [`NamePolicy`].

use std::time::Instant;

use crate::error::{Error, Result};
use crate::grammar::CallChoice;
use crate::runtime::NameChoice;
use crate::selector::{CompiledTools, EdgeSelector};

/// What a policy decided for one prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameDecision {
    /// How the name at `Action:` is chosen; `None` decodes it token by
    /// token.
    pub name_choice: Option<NameChoice>,
    /// What the selector leaves the message: [`CallChoice::Auto`] (the
    /// model decides), [`CallChoice::None`] (a veto: it answers without a
    /// call) or [`CallChoice::Required`] (it calls a tool).
    pub call: CallChoice,
    /// What the selector's pass took, when it ran.
    pub selector_ms: Option<f64>,
    /// "No call"'s log-probability less the best offered tool's, when the
    /// selector ran: what the veto and require margins are compared with.
    pub none_margin: Option<f64>,
}

/// Decides, for the prompt the edge model is about to continue, how the
/// offered `names` are chosen.
pub trait NamePolicy {
    fn decide(&mut self, prompt: &str, names: &[String]) -> Result<NameDecision>;
}

/// Whole-name scoring alone: every offered name scored by the edge model.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeNames;

impl NamePolicy for WholeNames {
    fn decide(&mut self, _prompt: &str, names: &[String]) -> Result<NameDecision> {
        Ok(NameDecision {
            name_choice: Some(NameChoice::react(names.iter().cloned())),
            ..NameDecision::default()
        })
    }
}

/// How a selector's scores enter decoding.
///
/// # Examples
///
/// ```
/// use loragen_agent::agent::SelectorParams;
///
/// let p = SelectorParams::default().with_weight(0.5).with_veto(Some(4.0));
/// assert_eq!((p.weight, p.keep, p.veto), (0.5, None, Some(4.0)));
/// assert!(p.validate().is_ok());
/// assert!(p.with_require(Some(0.0)).validate().is_ok());
/// assert!(p.with_require(Some(-5.0)).validate().is_err(), "a margin both vetoes and requires");
/// assert!(SelectorParams::default().with_keep(Some(0)).validate().is_err());
/// assert!(SelectorParams::default().with_weight(f64::NAN).validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectorParams {
    /// The weight of the selector's log-probability, added to each name's
    /// mean log-probability under the edge model.
    pub weight: f64,
    /// Only the `keep` names the selector ranks highest are candidates; 1
    /// forces its choice.
    pub keep: Option<usize>,
    /// A call is vetoed when "no call" scores more than this margin above
    /// the best offered tool (a difference of log-probabilities).
    pub veto: Option<f64>,
    /// A call is required when the best offered tool scores more than this
    /// margin above "no call"; 0 follows the selector's own ranking.
    pub require: Option<f64>,
}

impl Default for SelectorParams {
    fn default() -> Self {
        SelectorParams {
            weight: 1.0,
            keep: None,
            veto: None,
            require: None,
        }
    }
}

impl SelectorParams {
    #[must_use]
    pub fn with_weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    #[must_use]
    pub fn with_keep(mut self, keep: Option<usize>) -> Self {
        self.keep = keep;
        self
    }

    #[must_use]
    pub fn with_veto(mut self, veto: Option<f64>) -> Self {
        self.veto = veto;
        self
    }

    /// Requires a call when the best offered tool leads "no call" by more
    /// than `require`.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::agent::SelectorParams;
    ///
    /// let p = SelectorParams::default().with_require(Some(0.0));
    /// assert_eq!(p.require, Some(0.0));
    /// assert!(SelectorParams::default().with_require(Some(f64::NAN)).validate().is_err());
    /// ```
    #[must_use]
    pub fn with_require(mut self, require: Option<f64>) -> Self {
        self.require = require;
        self
    }

    pub fn validate(&self) -> Result<()> {
        if !self.weight.is_finite() || self.weight < 0.0 {
            return Err(Error::InvalidParam(format!(
                "the selector's weight must be a finite number of at least 0, got {}",
                self.weight
            )));
        }
        if self.keep == Some(0) {
            return Err(Error::InvalidParam(
                "the selector must keep at least one name".into(),
            ));
        }
        if self.veto.is_some_and(|v| !v.is_finite()) {
            return Err(Error::InvalidParam(
                "the selector's veto margin must be finite".into(),
            ));
        }
        if self.require.is_some_and(|r| !r.is_finite()) {
            return Err(Error::InvalidParam(
                "the selector's require margin must be finite".into(),
            ));
        }
        if let (Some(veto), Some(require)) = (self.veto, self.require) {
            if veto < -require {
                return Err(Error::InvalidParam(format!(
                    "a veto margin of {veto} and a require margin of {require} overlap: a \"no call\" margin between {veto} and {} would both veto and require a call",
                    -require
                )));
            }
        }
        Ok(())
    }

    /// The decision for `names` at `prompt`: `edge` scores `tools` and
    /// "no call", and the pass is timed.
    pub fn decide(
        &self,
        edge: &mut EdgeSelector,
        tools: &CompiledTools,
        prompt: &str,
        names: &[String],
    ) -> Result<NameDecision> {
        let started = Instant::now();
        let log_probs = edge.log_probs(tools, prompt)?;
        let selector_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(NameDecision {
            selector_ms: Some(selector_ms),
            ..self.from_log_probs(tools, &log_probs, names)?
        })
    }

    /// The decision for `names` from the selector's log-probabilities over
    /// `tools` and, last, "no call".
    pub fn from_log_probs(
        &self,
        tools: &CompiledTools,
        log_probs: &[f32],
        names: &[String],
    ) -> Result<NameDecision> {
        let prior = names
            .iter()
            .map(|n| {
                let i = tools.names.iter().position(|t| t == n).ok_or_else(|| {
                    Error::InvalidParam(format!(
                        "the tool {n} is not in the registry the selector compiled"
                    ))
                })?;
                Ok(f64::from(log_probs[i]))
            })
            .collect::<Result<Vec<_>>>()?;
        let none = log_probs
            .last()
            .map_or(f64::NEG_INFINITY, |&p| f64::from(p));
        let best = prior.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let none_margin = none - best;
        Ok(NameDecision {
            name_choice: Some(
                NameChoice::react(names.iter().cloned())
                    .with_prior(prior.into_iter().map(|p| self.weight * p).collect())
                    .with_keep(self.keep),
            ),
            call: if self.veto.is_some_and(|margin| none_margin > margin) {
                CallChoice::None
            } else if self.require.is_some_and(|margin| none_margin < -margin) {
                CallChoice::Required
            } else {
                CallChoice::Auto
            },
            selector_ms: None,
            none_margin: Some(none_margin),
        })
    }
}

/// A compiled registry's selector on the edge: the selector's query side
/// over the base model, its tools from the registry's compiled artifact.
#[derive(Debug)]
pub struct SelectorPolicy {
    edge: EdgeSelector,
    tools: CompiledTools,
    params: SelectorParams,
}

impl SelectorPolicy {
    pub fn new(edge: EdgeSelector, tools: CompiledTools, params: SelectorParams) -> Result<Self> {
        params.validate()?;
        Ok(SelectorPolicy {
            edge,
            tools,
            params,
        })
    }

    /// The same selector over another registry's tools.
    pub fn set_tools(&mut self, tools: CompiledTools) {
        self.tools = tools;
    }
}

impl NamePolicy for SelectorPolicy {
    fn decide(&mut self, prompt: &str, names: &[String]) -> Result<NameDecision> {
        self.params
            .decide(&mut self.edge, &self.tools, prompt, names)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use candle_core::{Device, Tensor};

    fn tools() -> CompiledTools {
        CompiledTools {
            names: vec!["a".into(), "b".into(), "c".into()],
            embeddings: Tensor::zeros((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap(),
        }
    }

    #[test]
    fn the_prior_is_the_weighted_log_probability_and_none_vetoes_or_requires_by_its_margin() {
        let names = ["c".to_owned(), "a".to_owned()];
        // a, b, c, then "no call".
        let log_probs = [-1.0f32, -2.0, -3.0, -0.5];
        let params = SelectorParams::default().with_weight(2.0);
        let d = params.from_log_probs(&tools(), &log_probs, &names).unwrap();
        let choice = d.name_choice.unwrap();
        assert_eq!(choice.names, names);
        assert_eq!(choice.prior, [-6.0, -2.0]);
        assert_eq!(d.none_margin, Some(0.5));
        assert_eq!(d.call, CallChoice::Auto);
        for (margin, veto) in [(0.4, true), (0.5, false), (-1.0, true)] {
            let d = params
                .with_veto(Some(margin))
                .from_log_probs(&tools(), &log_probs, &names)
                .unwrap();
            assert_eq!(d.call == CallChoice::None, veto, "margin {margin}");
        }
        // "No call" leads a by 0.5: a call is required only under a margin
        // below -0.5; 0, the selector's own ranking, leaves it to the model.
        for (margin, required) in [(0.0, false), (-0.5, false), (-0.6, true)] {
            let d = params
                .with_require(Some(margin))
                .from_log_probs(&tools(), &log_probs, &names)
                .unwrap();
            assert_eq!(d.call == CallChoice::Required, required, "margin {margin}");
        }
        let ahead = [-1.0f32, -2.0, -3.0, -4.0];
        let d = params
            .with_veto(Some(3.0))
            .with_require(Some(0.0))
            .from_log_probs(&tools(), &ahead, &names)
            .unwrap();
        assert_eq!(d.none_margin, Some(-3.0));
        assert_eq!(d.call, CallChoice::Required);
        let err = params
            .from_log_probs(&tools(), &log_probs, &["z".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("the tool z"), "{err}");
    }
}
