//! Mapping redis-rs errors into core's [`Error`], classified transient or permanent.

use analytics_core::Error;
use redis::{RedisError, RetryMethod};

/// Maps a Redis error met while doing `what`.
///
/// Timeouts are [`Error::Timeout`]; connection loss, refused connections, cluster topology
/// changes (MOVED/ASK/TRYAGAIN/CLUSTERDOWN), a loading or read-only server — anything redis-rs
/// says a retry or reconnect can fix — are [`Error::Unavailable`] (transient); everything else
/// (a script error, a wrong type) is a permanent [`Error::Backend`].
pub(crate) fn map(what: &str, error: RedisError) -> Error {
    let message = format!("redis {what}: {error}");
    if error.is_timeout() {
        Error::Timeout(message)
    } else if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_cluster_error()
        || !matches!(error.retry_method(), RetryMethod::NoRetry)
    {
        Error::unavailable(message)
    } else {
        Error::Backend(message)
    }
}

/// Redis returned something the scripts never return: the keys were changed behind our back.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Backend(format!("redis returned an invalid {what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ErrorKind;

    #[test]
    fn connection_failures_are_transient_and_script_errors_permanent() {
        let io = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(map("get", io).is_transient());
        let refused = RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(map("get", refused).is_transient());
        let timeout = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert!(matches!(map("get", timeout), Error::Timeout(_)));
        let type_error = RedisError::from((ErrorKind::UnexpectedReturnType, "bad reply"));
        assert!(!map("get", type_error).is_transient());
    }
}
