//! The crate's one error type.
//!
//! Every fallible function in the workspace returns [`Result`]. Adapters keep their own private
//! error enums and map them into [`Error`] at their boundary, classifying each failure as
//! transient (worth retrying, counts against the circuit breaker) or permanent (retrying cannot
//! help). Driver types never appear here.

use std::time::Duration;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
///
/// The enum is `#[non_exhaustive]`: match on [`Error::kind`] or [`Error::is_transient`] for
/// decisions, and on variants only for the cases you handle specially.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input failed validation. `field` names the offending field as the API spells it
    /// (`startDate`, `events[3].timestamp`, …); `reason` says what is wrong in plain words.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, as the public API names it.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested thing does not exist (for this tenant).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `experiment "exp_1"`.
        what: String,
    },
    /// The request conflicts with existing state (e.g. an experiment id already taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request names a tenant other than the authenticated one (a body's or parameter's
    /// `tenantId`). Permanent: tenants never see or write each other's data.
    #[error("forbidden {field}: {reason}")]
    Forbidden {
        /// The field naming the other tenant, as the public API names it.
        field: String,
        /// Why it is refused.
        reason: String,
    },
    /// The caller is not authenticated, or the credential is unknown.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// A dependency (store, cache, limiter store) is unavailable right now. Transient.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What is unavailable and why.
        message: String,
        /// When it is worth trying again, if known.
        retry_after: Option<Duration>,
    },
    /// An operation ran out of time. Transient.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The request was refused to protect the service (rate limit or load shedding). Transient.
    #[error("overloaded: {message}")]
    Overloaded {
        /// Why the request was refused.
        message: String,
        /// When it is worth trying again.
        retry_after: Duration,
    },
    /// A backend failed in a way retrying will not fix (schema mismatch, corrupt data, …).
    #[error("backend error: {0}")]
    Backend(String),
    /// A bug: an invariant the library relies on did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Whether retrying an operation that failed with an error can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The same request may succeed later (connection loss, timeout, overload).
    Transient,
    /// The same request will fail again (bad input, missing entity, bug).
    Permanent,
}

impl Error {
    /// Builds [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Builds [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// Builds [`Error::Unavailable`] without a retry hint.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// Whether the failure is transient or permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unavailable { .. } | Error::Timeout(_) | Error::Overloaded { .. } => ErrorKind::Transient,
            Error::InvalidInput { .. }
            | Error::NotFound { .. }
            | Error::Conflict(_)
            | Error::Forbidden { .. }
            | Error::Unauthenticated(_)
            | Error::Backend(_)
            | Error::Internal(_) => ErrorKind::Permanent,
        }
    }

    /// Shorthand for `self.kind() == ErrorKind::Transient`.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// The retry hint carried by the error, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => *retry_after,
            Error::Overloaded { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Builds [`Error::Forbidden`].
    pub fn forbidden(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Forbidden {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field an [`Error::InvalidInput`] or [`Error::Forbidden`] names.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidInput { field, .. } | Error::Forbidden { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Prefixes the field of an [`Error::InvalidInput`] or [`Error::Forbidden`] with `prefix` (`events[3].` + `page`), so
    /// errors inside a batch name the element. Other errors pass through unchanged.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Error::InvalidInput { field, reason } => Error::InvalidInput {
                field: format!("{prefix}{field}"),
                reason,
            },
            Error::Forbidden { field, reason } => Error::Forbidden {
                field: format!("{prefix}{field}"),
                reason,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_retryability() {
        assert!(Error::unavailable("db down").is_transient());
        assert!(Error::Timeout("query".into()).is_transient());
        assert!(!Error::invalid("startDate", "bad").is_transient());
        assert!(!Error::Internal("bug".into()).is_transient());
    }

    #[test]
    fn in_field_prefixes_only_invalid_input() {
        let e = Error::invalid("page", "too long").in_field("events[2].");
        assert_eq!(e.to_string(), "invalid events[2].page: too long");
        assert_eq!(Error::not_found("x").in_field("events[2]."), Error::not_found("x"));
    }
}
