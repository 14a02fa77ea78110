//! The handlers, one module per concern. Each handler extracts (caller, parameters, body),
//! calls one facade method, and maps the result; the rules live in core.

pub(crate) mod cache;
pub(crate) mod events;
pub(crate) mod experiments;
pub(crate) mod health;
pub(crate) mod ops;
pub(crate) mod stream;
pub(crate) mod summary;
