//! The seam through which compiled tools reach the edge runtime. A compiled
//! adapter is one artifact, whose types live where they are defined, in
//! [`loragen_protocol::artifact`]: the GGUF LoRA file plus a manifest
//! saying what it was compiled from. The agent's [`AdapterCache`] asks an
//! [`AdapterSource`](loragen_protocol::artifact::AdapterSource) (the generator, a remote
//! cloud service) for a registry's adapter and its host checks the
//! manifest, so this crate never depends on whatever compiles.

mod cache;

pub use cache::{AdapterCache, Ensured};
