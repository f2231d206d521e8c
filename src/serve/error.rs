//! Errors of `loragen serve`: [`ApiError`] is what a client sees, an
//! OpenAI-style JSON body with its HTTP status; [`Error`] is what stops the
//! server or a worker.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use loragen_agent::ContextLimit;
use serde_json::json;

/// Everything that can fail starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Agent(#[from] loragen_agent::Error),
    #[error("invalid serve settings: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the {0} worker has stopped")]
    WorkerGone(&'static str),
    #[error("cloud role at {url}: {detail}")]
    Remote { url: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer: status, OpenAI's `error.type`, an optional `param`
/// naming the offending field, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub param: Option<String>,
    pub message: String,
    /// Seconds a client should wait before retrying (503 only).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// 400: the request is malformed or asks for something impossible.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404: no such model or adapter.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 503 with `Retry-After`: the queue is full.
    pub fn busy(queue: usize) -> Self {
        Self::unavailable(format!("{queue} requests are already waiting; retry later"))
    }

    /// 503 with `Retry-After: 1`: the server cannot take the request now
    /// but may in a moment (a full queue, a full KV cache).
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_busy", message);
        e.retry_after = Some(1);
        e
    }

    /// 500: the server failed; the message says where.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.status.as_u16().to_string(),
        }})
    }
}

impl From<Error> for ApiError {
    /// A request that runs into the edge model's context is the client's
    /// to shorten (400) or, for a full KV cache, to retry (503); anything
    /// else is the server's failure (500).
    fn from(e: Error) -> Self {
        match &e {
            Error::Agent(agent) => match agent.context_limit() {
                Some(ContextLimit::TooLong { tokens, n_ctx }) => ApiError::invalid(format!(
                    "the conversation is {tokens} tokens, over the edge model's context of {n_ctx} tokens; shorten the messages"
                ))
                .with_param("messages"),
                Some(ContextLimit::CacheFull) => {
                    ApiError::unavailable("the edge model's context is full; retry later")
                }
                None => ApiError::internal(e.to_string()),
            },
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_limits_are_the_clients_not_the_servers() {
        let too_long = ApiError::from(Error::Agent(loragen_agent::Error::ContextOverflow {
            tokens: 90,
            n_ctx: 64,
        }));
        assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
        assert_eq!(too_long.param.as_deref(), Some("messages"));
        assert!(too_long.message.contains("90 tokens") && too_long.message.contains("64"));

        let full = ApiError::from(Error::Agent(loragen_agent::Error::Llama {
            stage: "decode",
            source: llama_cpp_2::DecodeError::NoKvCacheSlot.into(),
        }));
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.retry_after, Some(1));
        let response = full.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");

        let other = ApiError::from(Error::Agent(loragen_agent::Error::Llama {
            stage: "decode",
            source: llama_cpp_2::DecodeError::Unknown(-3).into(),
        }));
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other.message.contains("decode"), "{}", other.message);
    }
}
