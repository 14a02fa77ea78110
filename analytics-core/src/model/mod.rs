//! The data model: validated text types, events, experiments, tenants.

pub mod event;
pub mod experiment;
pub mod tenant;
pub mod text;

pub use event::{Event, EventInput};
pub use experiment::{Experiment, ExperimentInput, ExperimentPatch, ExperimentStatus, VariantSpec};
pub use tenant::{ApiKey, ApiKeyHash, Tenant};
pub use text::{
    Browser, Country, Device, EventId, EventType, ExperimentId, Page, SessionId, TenantId, UserId, VariantKey,
};
