//! Mapping sqlx errors into core's [`Error`], classified transient or permanent.

use analytics_core::Error;

/// SQLSTATE classes and codes this crate treats specially.
pub(crate) mod sqlstate {
    /// `40001` serialization_failure.
    pub(crate) const SERIALIZATION_FAILURE: &str = "40001";
    /// `40P01` deadlock_detected.
    pub(crate) const DEADLOCK: &str = "40P01";
    /// `57014` query_canceled (what `statement_timeout` raises).
    pub(crate) const QUERY_CANCELED: &str = "57014";
    /// `55P03` lock_not_available (`lock_timeout`).
    pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";
    /// `23505` unique_violation.
    pub(crate) const UNIQUE_VIOLATION: &str = "23505";
    /// `42P07` duplicate_table.
    pub(crate) const DUPLICATE_TABLE: &str = "42P07";
    /// `23514` check_violation (also: a new partition's range overlaps rows in the default).
    pub(crate) const CHECK_VIOLATION: &str = "23514";
}

/// Whether `error` is a conflict between concurrent transactions that a retry resolves.
pub(crate) fn is_retryable_conflict(error: &sqlx::Error) -> bool {
    matches!(
        code(error).as_deref(),
        Some(sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK)
    )
}

/// Whether `error` is a unique-key violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    code(error).as_deref() == Some(sqlstate::UNIQUE_VIOLATION)
}

/// The SQLSTATE of a database error.
pub(crate) fn code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Maps a sqlx error met while doing `what` into core's error.
///
/// Transient: connection loss and I/O, pool exhaustion, timeouts (statement and lock), conflicts
/// between concurrent transactions, and the server's own unavailability classes (08 connection
/// exception, 53 insufficient resources, 57P0x shutdown). Everything else is a permanent
/// [`Error::Backend`].
pub(crate) fn map(what: &str, error: sqlx::Error) -> Error {
    let message = format!("postgres {what}: {error}");
    match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Error::unavailable(message),
        sqlx::Error::PoolTimedOut => Error::Timeout(message),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(sqlstate::QUERY_CANCELED | sqlstate::LOCK_NOT_AVAILABLE) => Error::Timeout(message),
            Some(sqlstate::SERIALIZATION_FAILURE | sqlstate::DEADLOCK) => Error::unavailable(message),
            Some(code) if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") => {
                Error::unavailable(message)
            }
            _ => Error::Backend(message),
        },
        _ => Error::Backend(message),
    }
}

/// A row the store wrote could not be read back as a valid value: the database was changed
/// behind the store's back.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Backend(format!("postgres returned an invalid {what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_transient_and_timeouts_time_out() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(map("summary", io).is_transient());
        assert!(matches!(map("summary", sqlx::Error::PoolTimedOut), Error::Timeout(_)));
        assert!(map("summary", sqlx::Error::PoolClosed).is_transient());
        assert!(!map("summary", sqlx::Error::RowNotFound).is_transient());
    }
}
