//! A client of a remote cloud role: an [`AdapterSource`] that compiles
//! over HTTP, so that an edge server, the REPL or the agent can take
//! `--generator URL`.

use std::io::Read;
use std::path::Path;

use loragen_protocol::artifact::{selector_path, AdapterSource, CompiledAdapter, Manifest};
use loragen_protocol::atomic::write_atomic;
use loragen_protocol::digest::sha256_hex;
use serde::Deserialize;

/// The header that carries an artifact's manifest beside its GGUF bytes.
pub const MANIFEST_HEADER: &str = "x-loragen-manifest";

/// Largest adapter accepted from a server (a rank-16 adapter of the
/// default edge model is about 9 MB).
const MAX_ADAPTER_BYTES: u64 = 512 * 1024 * 1024;

/// A cloud role at `url` (for example `http://10.0.0.2:8080`).
///
/// # Examples
///
/// ```
/// let remote = loragen::serve::RemoteCloud::new("http://127.0.0.1:9/");
/// assert_eq!(remote.url(), "http://127.0.0.1:9");
/// ```
#[derive(Debug, Clone)]
pub struct RemoteCloud {
    url: String,
    agent: ureq::Agent,
}

/// The answer of `POST /v1/adapters`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompileAnswer {
    pub fingerprint: String,
    pub adapter_sha256: String,
    pub cached: bool,
}

impl RemoteCloud {
    pub fn new(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        RemoteCloud {
            url: url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error(&self, detail: impl std::fmt::Display) -> loragen_protocol::Error {
        loragen_protocol::Error::Compile(format!("cloud role at {}: {detail}", self.url).into())
    }

    /// The error body of a refused request, as its message.
    fn refusal(&self, status: u16, body: &str) -> loragen_protocol::Error {
        let message = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).collect());
        self.error(format!("HTTP {status}: {message}"))
    }

    /// Asks the cloud role to compile `system`.
    pub fn compile(&self, system: &str) -> loragen_protocol::Result<CompileAnswer> {
        let mut response = self
            .agent
            .post(&format!("{}/v1/adapters", self.url))
            .send_json(serde_json::json!({ "system": system }))
            .map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.error(e))?;
        if status != 200 {
            return Err(self.refusal(status, &body));
        }
        serde_json::from_str(&body).map_err(|e| self.error(format!("bad compile answer: {e}")))
    }

    /// Downloads the artifact of `fingerprint` to `out` (atomically) and its
    /// manifest beside it; the bytes must hash to the manifest's sha256.
    pub fn fetch(&self, fingerprint: &str, out: &Path) -> loragen_protocol::Result<Manifest> {
        let mut response = self
            .agent
            .get(&format!("{}/v1/adapters/{fingerprint}", self.url))
            .call()
            .map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(self.refusal(status, &body));
        }
        let manifest: Manifest = response
            .headers()
            .get(MANIFEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| self.error(format!("the artifact has no {MANIFEST_HEADER} header")))?;
        let mut bytes = Vec::new();
        response
            .body_mut()
            .with_config()
            .limit(MAX_ADAPTER_BYTES)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| self.error(e))?;
        let sha = sha256_hex(&bytes);
        if sha != manifest.adapter_sha256 {
            return Err(self.error(format!(
                "the adapter's sha256 is {sha}, its manifest says {}",
                manifest.adapter_sha256
            )));
        }
        write_atomic(out, &bytes)?;
        if let Some(part) = &manifest.selector {
            self.fetch_selector_part(fingerprint, &part.sha256, out)?;
        }
        manifest.write(out)?;
        Ok(manifest)
    }

    /// Downloads the tool selector's part of `fingerprint`'s artifact
    /// beside `out`; the bytes must hash to `sha256`, the manifest's.
    fn fetch_selector_part(
        &self,
        fingerprint: &str,
        sha256: &str,
        out: &Path,
    ) -> loragen_protocol::Result<()> {
        let mut response = self
            .agent
            .get(&format!("{}/v1/adapters/{fingerprint}/selector", self.url))
            .call()
            .map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ADAPTER_BYTES)
            .read_to_vec()
            .map_err(|e| self.error(e))?;
        if status != 200 {
            return Err(self.refusal(status, &String::from_utf8_lossy(&body)));
        }
        let sha = sha256_hex(&body);
        if sha != sha256 {
            return Err(self.error(format!(
                "the tool selector part's sha256 is {sha}, its manifest says {sha256}"
            )));
        }
        write_atomic(&selector_path(out), &body)?;
        Ok(())
    }
}

impl AdapterSource for RemoteCloud {
    fn compile_adapter(
        &mut self,
        system: &str,
        out: &Path,
        _cache: bool,
    ) -> loragen_protocol::Result<CompiledAdapter> {
        let answer = self.compile(system)?;
        let manifest = self.fetch(&answer.fingerprint, out)?;
        if manifest.adapter_sha256 != answer.adapter_sha256 {
            return Err(self.error("the fetched adapter is not the one just compiled"));
        }
        Ok(CompiledAdapter {
            path: out.to_owned(),
            manifest,
            cached: answer.cached,
        })
    }
}
