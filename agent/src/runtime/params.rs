//! Parameters of sessions and generation calls.

use crate::error::{Error, Result};

/// Settings of a session (one llama.cpp context and its KV cache).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionParams {
    pub n_ctx: u32,
    /// Largest number of tokens handed to llama.cpp in one decode call.
    pub n_batch: u32,
    /// Threads of llama.cpp's kernels; by default `LORAGEN_THREADS`, else
    /// every core.
    pub n_threads: usize,
    /// Keep the KV state of the longest common token prefix between calls,
    /// so a shared system prompt is computed once.
    pub reuse_prefix: bool,
    /// Compute final-layer hidden states (needed by [`super::Session::hidden_states`]).
    pub embeddings: bool,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            n_ctx: 4096,
            n_batch: 2048,
            n_threads: super::default_threads(),
            reuse_prefix: true,
            embeddings: false,
        }
    }
}

impl SessionParams {
    /// The context size in tokens: prompt and output together must fit.
    /// A session refuses fewer than 16.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::SessionParams;
    ///
    /// let params = SessionParams::default().with_n_ctx(1024);
    /// assert_eq!(params.n_ctx, 1024);
    /// ```
    #[must_use]
    pub fn with_n_ctx(mut self, n_ctx: u32) -> Self {
        self.n_ctx = n_ctx;
        self
    }

    /// The most tokens handed to llama.cpp in one decode call; a longer
    /// prompt is prefilled in several.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::SessionParams;
    ///
    /// let params = SessionParams::default().with_n_batch(512);
    /// assert_eq!(params.n_batch, 512);
    /// ```
    #[must_use]
    pub fn with_n_batch(mut self, n_batch: u32) -> Self {
        self.n_batch = n_batch;
        self
    }

    /// Threads of llama.cpp's kernels (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::SessionParams;
    ///
    /// let params = SessionParams::default().with_threads(2);
    /// assert_eq!(params.n_threads, 2);
    /// ```
    #[must_use]
    pub fn with_threads(mut self, n_threads: usize) -> Self {
        self.n_threads = n_threads;
        self
    }

    /// Whether to keep the KV state of the prefix a prompt shares with the
    /// last one (on by default).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::SessionParams;
    ///
    /// let cold = SessionParams::default().with_prefix_reuse(false);
    /// assert!(!cold.reuse_prefix);
    /// ```
    #[must_use]
    pub fn with_prefix_reuse(mut self, reuse: bool) -> Self {
        self.reuse_prefix = reuse;
        self
    }

    /// Whether the session also computes final-layer hidden states, which
    /// the tool selector reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::SessionParams;
    ///
    /// let params = SessionParams::default().with_embeddings(true);
    /// assert!(params.embeddings);
    /// ```
    #[must_use]
    pub fn with_embeddings(mut self, embeddings: bool) -> Self {
        self.embeddings = embeddings;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        super::env_threads()?;
        if self.n_ctx < 16 {
            return Err(Error::InvalidParam(format!(
                "n_ctx must be at least 16, got {}",
                self.n_ctx
            )));
        }
        if self.n_batch == 0 {
            return Err(Error::InvalidParam("n_batch must be positive".into()));
        }
        if self.n_threads == 0 || i32::try_from(self.n_threads).is_err() {
            return Err(Error::InvalidParam(format!(
                "n_threads must be in 1..=i32::MAX, got {}",
                self.n_threads
            )));
        }
        Ok(())
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Always the most likely token: deterministic.
    Greedy,
    /// Temperature and nucleus sampling, reproducible through the seed.
    Random {
        temperature: f32,
        top_p: f32,
        seed: u32,
    },
}

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
    /// A GBNF grammar (root rule `root`) that constrains the output.
    pub grammar: Option<String>,
    /// Prepend BOS when the model's vocabulary asks for it.
    pub add_bos: bool,
    /// Jump-forward decoding: where the grammar admits exactly one
    /// continuation, feed its tokens in one batched decode instead of
    /// sampling them one by one (see `Session::generate_tokens`).
    pub jump_forward: bool,
    /// Whole-name scoring of tool names; `None` decodes them token by token.
    pub name_choice: Option<NameChoice>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampling: Sampling::Greedy,
            stop: Vec::new(),
            grammar: None,
            add_bos: true,
            jump_forward: false,
            name_choice: None,
        }
    }
}

impl GenerateParams {
    /// The most tokens to generate (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::GenerateParams;
    ///
    /// let params = GenerateParams::default().with_max_tokens(96);
    /// assert_eq!(params.max_tokens, 96);
    /// ```
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// How each token is chosen; greedy by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::{GenerateParams, Sampling};
    ///
    /// let sampling = Sampling::Random { temperature: 0.7, top_p: 0.9, seed: 42 };
    /// let params = GenerateParams::default().with_sampling(sampling);
    /// assert_eq!(params.sampling, sampling);
    /// ```
    #[must_use]
    pub fn with_sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Stop strings: the output ends before the first occurrence of any
    /// (none may be empty).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::GenerateParams;
    ///
    /// let params = GenerateParams::default().with_stop(["\nObservation:"]);
    /// assert_eq!(params.stop, ["\nObservation:"]);
    /// ```
    #[must_use]
    pub fn with_stop<S: Into<String>>(mut self, stop: impl IntoIterator<Item = S>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    /// A GBNF grammar (root rule `root`) the output must follow; `None` for
    /// free text.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::GenerateParams;
    ///
    /// let grammar = r#"root ::= "yes" | "no""#.to_owned();
    /// let params = GenerateParams::default().with_grammar(Some(grammar));
    /// assert!(params.grammar.is_some());
    /// ```
    #[must_use]
    pub fn with_grammar(mut self, grammar: Option<String>) -> Self {
        self.grammar = grammar;
        self
    }

    /// Jump-forward decoding: spans the grammar forces are fed in one
    /// batched decode. Faster; the output can differ, since a forced span
    /// is tokenised as a whole rather than token by token.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::GenerateParams;
    ///
    /// let params = GenerateParams::default().with_jump_forward(true);
    /// assert!(params.jump_forward);
    /// ```
    #[must_use]
    pub fn with_jump_forward(mut self, jump_forward: bool) -> Self {
        self.jump_forward = jump_forward;
        self
    }

    /// Whole-name scoring of tool names (see [`NameChoice`]); `None`
    /// decodes names token by token.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::{GenerateParams, NameChoice};
    ///
    /// let choice = NameChoice::react(["get_weather", "get_time"]);
    /// let params = GenerateParams::default().with_name_choice(Some(choice));
    /// assert_eq!(params.name_choice.map(|c| c.names.len()), Some(2));
    /// ```
    #[must_use]
    pub fn with_name_choice(mut self, name_choice: Option<NameChoice>) -> Self {
        self.name_choice = name_choice;
        self
    }

    /// Whether to prepend BOS when the vocabulary asks for it (on by
    /// default; off to continue a text).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::GenerateParams;
    ///
    /// let params = GenerateParams::default().with_bos(false);
    /// assert!(!params.add_bos);
    /// ```
    #[must_use]
    pub fn with_bos(mut self, add_bos: bool) -> Self {
        self.add_bos = add_bos;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(Error::InvalidParam("max_tokens must be positive".into()));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(Error::InvalidParam("stop strings must not be empty".into()));
        }
        if let Some(choice) = &self.name_choice {
            choice.validate()?;
        }
        if let Sampling::Random {
            temperature, top_p, ..
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::InvalidParam(format!(
                    "temperature must be > 0, got {temperature}"
                )));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(Error::InvalidParam(format!(
                    "top_p must be in (0, 1], got {top_p}"
                )));
            }
        }
        Ok(())
    }
}

/// Whole-name scoring: where the current line of the output is `anchor`
/// followed by a text that `lead + name + end` of two or more `names` still
/// begins with, the rest of each such line is scored in one batched decode
/// by the model's mean log-probability per token, and the best is forced.
/// A name the grammar does not admit there is not scored.
///
/// # Examples
///
/// ```
/// use loragen_agent::runtime::{GenerateParams, NameChoice};
///
/// let choice = NameChoice::react(["Get Photo Description", "Segment the Image"]);
/// assert_eq!(choice.anchor, "Action:");
/// assert_eq!(choice.line("Segment the Image"), " Segment the Image\n");
/// let params = GenerateParams::default().with_name_choice(Some(choice));
/// assert!(params.name_choice.is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NameChoice {
    /// What the line starts with before the name.
    pub anchor: String,
    /// Between the anchor and the name.
    pub lead: String,
    pub names: Vec<String>,
    /// What ends the name; scoring it tells a name from a longer one that
    /// it begins.
    pub end: String,
    /// A score per name added to its mean log-probability (the selector's
    /// weighted log-probability); empty for none.
    pub prior: Vec<f64>,
    /// Only the names with the `keep` highest priors are candidates; one
    /// alone is forced without scoring.
    pub keep: Option<usize>,
}

impl NameChoice {
    /// The ReAct protocol's tool names: `Action: {name}` and a newline.
    pub fn react<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        NameChoice {
            anchor: loragen_protocol::react::ACTION.to_owned(),
            lead: " ".to_owned(),
            names: names.into_iter().map(Into::into).collect(),
            end: "\n".to_owned(),
            prior: Vec::new(),
            keep: None,
        }
    }

    /// Adds `prior[i]` to the score of `names[i]`.
    #[must_use]
    pub fn with_prior(mut self, prior: Vec<f64>) -> Self {
        self.prior = prior;
        self
    }

    /// Keeps only the `keep` names of highest prior as candidates; it
    /// needs priors to rank by.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_agent::runtime::NameChoice;
    ///
    /// let choice = NameChoice::react(["get_weather", "get_time", "read_file"])
    ///     .with_prior(vec![-0.2, -1.5, -4.0])
    ///     .with_keep(Some(2));
    /// assert_eq!(choice.keep, Some(2));
    /// ```
    #[must_use]
    pub fn with_keep(mut self, keep: Option<usize>) -> Self {
        self.keep = keep;
        self
    }

    /// The prior of name `i` (0 without priors).
    pub(super) fn prior_of(&self, i: usize) -> f64 {
        self.prior.get(i).copied().unwrap_or(0.0)
    }

    /// Whether name `i` is among the kept (every name without `keep`).
    pub(super) fn kept(&self, i: usize) -> bool {
        let Some(keep) = self.keep else {
            return true;
        };
        let p = self.prior_of(i);
        // Ranked by prior, ties to the earlier name.
        let above = (0..self.names.len())
            .filter(|&j| {
                let q = self.prior_of(j);
                q > p || (q == p && j < i)
            })
            .count();
        above < keep
    }

    /// The text after the anchor that names `name`.
    pub fn line(&self, name: &str) -> String {
        format!("{}{name}{}", self.lead, self.end)
    }

    fn validate(&self) -> Result<()> {
        if self.anchor.is_empty() || self.anchor.contains('\n') {
            return Err(Error::InvalidParam(format!(
                "a name choice's anchor must be one non-empty line, got {:?}",
                self.anchor
            )));
        }
        if let Some(bad) = self.names.iter().find(|n| n.is_empty() || n.contains('\n')) {
            return Err(Error::InvalidParam(format!(
                "a tool name to choose must be one non-empty line, got {bad:?}"
            )));
        }
        if !self.prior.is_empty() && self.prior.len() != self.names.len() {
            return Err(Error::InvalidParam(format!(
                "a name choice has {} priors for {} names",
                self.prior.len(),
                self.names.len()
            )));
        }
        if self.prior.iter().any(|p| !p.is_finite()) {
            return Err(Error::InvalidParam("a name's prior is not finite".into()));
        }
        match self.keep {
            Some(0) => Err(Error::InvalidParam(
                "a name choice must keep at least one name".into(),
            )),
            Some(_) if self.prior.is_empty() => Err(Error::InvalidParam(
                "keeping the best names needs priors to rank them by".into(),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_names_are_those_of_highest_prior_ties_to_the_first() {
        let choice =
            NameChoice::react(["a", "b", "c", "d"]).with_prior(vec![-1.0, -0.5, -0.5, -3.0]);
        let kept = |c: &NameChoice| (0..4).filter(|&i| c.kept(i)).collect::<Vec<_>>();
        assert_eq!(kept(&choice), [0, 1, 2, 3], "no keep keeps all");
        assert_eq!(kept(&choice.clone().with_keep(Some(1))), [1]);
        assert_eq!(kept(&choice.clone().with_keep(Some(2))), [1, 2]);
        assert_eq!(kept(&choice.clone().with_keep(Some(3))), [0, 1, 2]);
        assert_eq!(kept(&choice.clone().with_keep(Some(9))), [0, 1, 2, 3]);
        assert_eq!(choice.prior_of(3), -3.0);
        assert_eq!(NameChoice::react(["a"]).prior_of(0), 0.0);
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(GenerateParams::default().validate().is_ok());
        assert!(GenerateParams::default()
            .with_max_tokens(0)
            .validate()
            .is_err());
        assert!(GenerateParams::default()
            .with_stop([""])
            .validate()
            .is_err());
        let hot = Sampling::Random {
            temperature: 0.0,
            top_p: 0.9,
            seed: 1,
        };
        assert!(GenerateParams::default()
            .with_sampling(hot)
            .validate()
            .is_err());
        let wide = Sampling::Random {
            temperature: 0.7,
            top_p: 1.5,
            seed: 1,
        };
        assert!(GenerateParams::default()
            .with_sampling(wide)
            .validate()
            .is_err());
        assert!(SessionParams::default().with_threads(0).validate().is_err());
        let names = NameChoice::react(["a", "b"]);
        let bad_choices = [
            names.clone().with_prior(vec![0.0]),
            names.clone().with_prior(vec![0.0, f64::NAN]),
            names.clone().with_keep(Some(1)),
            names.clone().with_prior(vec![0.0, 1.0]).with_keep(Some(0)),
        ];
        for choice in bad_choices {
            assert!(choice.validate().is_err(), "{choice:?}");
        }
        assert!(SessionParams::default().with_n_ctx(4).validate().is_err());
    }
}
