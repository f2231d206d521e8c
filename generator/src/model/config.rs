//! The generator's configuration: sizes of the meta-token resampler, the
//! routers and the expert pool. Saved as `config.json` beside the weights.

use serde::{Deserialize, Serialize};

use crate::edge::{LoraConfig, Target};
use crate::error::{Error, Result};
pub use crate::features::MetaSource;

/// How router logits become gates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gating {
    /// Softmax, keep the top K, renormalise (LoRA-Gen's default).
    KeepTopK,
    /// For the ablation: in training, Gumbel noise is added to the router
    /// logits and the result divided by `tau` before KeepTop-K, so the
    /// choice of experts is sampled; at inference, KeepTop-K of
    /// `logits / tau` without noise.
    GumbelTopK { tau: f64 },
}

/// What turns each layer's meta token into that layer's LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// LoRA-Gen's: a router per layer keeps the top K of n experts, whose
    /// factors the gates mix.
    #[default]
    Experts,
    /// The paper's Table 9 contrast: the factors generated directly, through
    /// a map factorised at `width` (`model::DirectHead`).
    Direct { width: usize },
}

/// Sizes and settings of a generator.
///
/// # Examples
///
/// ```
/// use loragen_generator::model::GeneratorConfig;
///
/// let c = GeneratorConfig::default().with_edge_layers(18).with_cloud_dim(896);
/// assert!(c.validate().is_ok());
/// assert!(c.clone().with_top_k(9).validate().is_err(), "K above n experts");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Width of the cloud model's hidden states (the features).
    pub cloud_dim: usize,
    /// Edge layers: one meta token, router and expert pool each.
    pub edge_layers: usize,
    /// Where the meta tokens come from; configs written before the
    /// ablation existed are cross-attention ones.
    #[serde(default)]
    pub meta_source: MetaSource,
    /// Width of the meta tokens.
    pub meta_dim: usize,
    /// Attention heads of the meta tokens' cross-attention.
    pub meta_heads: usize,
    /// Hidden width of each router (f1's output).
    pub router_hidden: usize,
    pub n_experts: usize,
    pub top_k: usize,
    pub gating: Gating,
    /// Weight of the (sigma / mu)^2 load-balancing loss.
    pub cv_weight: f64,
    /// Rank, alpha, dropout and targets of every expert.
    pub lora: LoraConfig,
    /// Experts or direct generation; configs written before the ablation
    /// existed are expert ones.
    #[serde(default)]
    pub head: Head,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            cloud_dim: 896,
            edge_layers: 18,
            meta_source: MetaSource::CrossAttention,
            meta_dim: 256,
            meta_heads: 4,
            router_hidden: 64,
            n_experts: 8,
            top_k: 2,
            gating: Gating::KeepTopK,
            cv_weight: 0.01,
            lora: LoraConfig::default()
                .with_rank(16)
                .with_alpha(16.0)
                .with_dropout(0.05)
                .with_targets(Target::FFN.to_vec()),
            head: Head::Experts,
        }
    }
}

impl GeneratorConfig {
    /// Width of the cloud model's hidden states: the features' width.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_cloud_dim(896);
    /// assert_eq!(c.cloud_dim, 896);
    /// ```
    #[must_use]
    pub fn with_cloud_dim(mut self, cloud_dim: usize) -> Self {
        self.cloud_dim = cloud_dim;
        self
    }

    /// Layers of the edge model: one meta token, router and expert pool
    /// each.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_edge_layers(18);
    /// assert_eq!(c.edge_layers, 18);
    /// ```
    #[must_use]
    pub fn with_edge_layers(mut self, edge_layers: usize) -> Self {
        self.edge_layers = edge_layers;
        self
    }

    /// Where the meta tokens come from (see [`MetaSource`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::{GeneratorConfig, MetaSource};
    ///
    /// let c = GeneratorConfig::default().with_meta_source(MetaSource::CrossAttention);
    /// assert_eq!(c.meta_source, MetaSource::CrossAttention);
    /// ```
    #[must_use]
    pub fn with_meta_source(mut self, meta_source: MetaSource) -> Self {
        self.meta_source = meta_source;
        self
    }

    /// Width of the meta tokens; the meta heads must divide it.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_meta_dim(128);
    /// assert!(c.validate().is_ok());
    /// assert!(c.with_meta_dim(130).validate().is_err(), "4 heads do not divide 130");
    /// ```
    #[must_use]
    pub fn with_meta_dim(mut self, meta_dim: usize) -> Self {
        self.meta_dim = meta_dim;
        self
    }

    /// Attention heads of the meta tokens' cross-attention.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_meta_heads(8);
    /// assert!(c.validate().is_ok());
    /// ```
    #[must_use]
    pub fn with_meta_heads(mut self, meta_heads: usize) -> Self {
        self.meta_heads = meta_heads;
        self
    }

    /// Hidden width of each layer's router.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_router_hidden(32);
    /// assert_eq!(c.router_hidden, 32);
    /// ```
    #[must_use]
    pub fn with_router_hidden(mut self, router_hidden: usize) -> Self {
        self.router_hidden = router_hidden;
        self
    }

    /// LoRA experts per layer, n; at least K.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_experts(4);
    /// assert!(c.validate().is_ok());
    /// assert!(c.with_experts(1).validate().is_err(), "K = 2 above n = 1");
    /// ```
    #[must_use]
    pub fn with_experts(mut self, n_experts: usize) -> Self {
        self.n_experts = n_experts;
        self
    }

    /// Experts each layer keeps, K, with 1 <= K <= n.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_top_k(1);
    /// assert!(c.validate().is_ok());
    /// assert!(c.with_top_k(0).validate().is_err());
    /// ```
    #[must_use]
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// Weight of the load-balancing loss, (sigma / mu)^2 of the experts'
    /// importance; 0 turns it off.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_cv_weight(0.0);
    /// assert!(c.validate().is_ok());
    /// ```
    #[must_use]
    pub fn with_cv_weight(mut self, cv_weight: f64) -> Self {
        self.cv_weight = cv_weight;
        self
    }

    /// How router logits become gates (see [`Gating`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::{Gating, GeneratorConfig};
    ///
    /// let c = GeneratorConfig::default().with_gating(Gating::GumbelTopK { tau: 1.0 });
    /// assert!(c.validate().is_ok());
    /// let cold = GeneratorConfig::default().with_gating(Gating::GumbelTopK { tau: 0.0 });
    /// assert!(cold.validate().is_err());
    /// ```
    #[must_use]
    pub fn with_gating(mut self, gating: Gating) -> Self {
        self.gating = gating;
        self
    }

    /// Experts or direct generation of the factors (see [`Head`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::model::{GeneratorConfig, Head};
    ///
    /// let c = GeneratorConfig::default().with_head(Head::Direct { width: 64 });
    /// assert!(c.validate().is_ok());
    /// let empty = GeneratorConfig::default().with_head(Head::Direct { width: 0 });
    /// assert!(empty.validate().is_err());
    /// ```
    #[must_use]
    pub fn with_head(mut self, head: Head) -> Self {
        self.head = head;
        self
    }

    /// Rank, alpha, dropout and targets of every expert.
    ///
    /// # Examples
    ///
    /// ```
    /// use loragen_generator::edge::LoraConfig;
    /// use loragen_generator::model::GeneratorConfig;
    ///
    /// let c = GeneratorConfig::default().with_lora(LoraConfig::default().with_rank(8));
    /// assert_eq!(c.lora.rank, 8);
    /// ```
    #[must_use]
    pub fn with_lora(mut self, lora: LoraConfig) -> Self {
        self.lora = lora;
        self
    }

    /// Every size positive, heads dividing the meta width, 1 <= K <= n.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config(format!("generator config: {what}")));
        if [
            self.cloud_dim,
            self.edge_layers,
            self.meta_dim,
            self.meta_heads,
            self.router_hidden,
            self.n_experts,
        ]
        .contains(&0)
        {
            return bad(format!("every size must be positive: {self:?}"));
        }
        if self.head == (Head::Direct { width: 0 }) {
            return bad("the direct head's width must be positive".into());
        }
        if self.meta_dim % self.meta_heads != 0 {
            return bad(format!(
                "{} meta heads do not divide the meta width {}",
                self.meta_heads, self.meta_dim
            ));
        }
        if let Gating::GumbelTopK { tau } = self.gating {
            if !(tau.is_finite() && tau > 0.0) {
                return bad(format!(
                    "the Gumbel temperature must be positive, got {tau}"
                ));
            }
        }
        if !(1..=self.n_experts).contains(&self.top_k) {
            return bad(format!(
                "K = {} is not between 1 and the {} experts",
                self.top_k, self.n_experts
            ));
        }
        if !(self.cv_weight >= 0.0 && self.cv_weight.is_finite()) {
            return bad(format!(
                "cv_weight {} must be finite and >= 0",
                self.cv_weight
            ));
        }
        self.lora.validate()
    }
}
