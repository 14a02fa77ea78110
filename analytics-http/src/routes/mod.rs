//! The handlers, one module per resource.

pub(crate) mod analytics;
pub(crate) mod events;
pub(crate) mod experiments;
pub(crate) mod ops;
pub(crate) mod stream;
