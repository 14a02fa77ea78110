//! Validated text newtypes.
//!
//! Every identifier or label that reaches a store is one of these types, so a value that exists
//! has passed validation. Each type documents its limits; all are cheap to clone (`Arc<str>`).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which characters a text type accepts.
#[derive(Debug, Clone, Copy)]
enum Charset {
    /// ASCII letters, digits and `_ - . :` — safe in keys, URLs and log lines.
    Identifier,
    /// Any Unicode text without control characters.
    Printable,
}

impl Charset {
    /// The charset as a regular expression of a whole, non-empty value (JSON Schema `pattern`).
    #[cfg(feature = "openapi")]
    fn pattern(self) -> &'static str {
        match self {
            Charset::Identifier => "^[A-Za-z0-9_.:-]+$",
            Charset::Printable => "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        }
    }

    fn accepts(self, c: char) -> bool {
        match self {
            Charset::Identifier => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'),
            Charset::Printable => !c.is_control(),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Charset::Identifier => "ASCII letters, digits, '_', '-', '.' and ':'",
            Charset::Printable => "text without control characters",
        }
    }
}

fn validate(field: &str, value: &str, max_chars: usize, charset: Charset) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty (omit it instead)"));
    }
    // Most values are short ASCII: checked byte by byte, without decoding characters (two
    // decoding passes per field were a visible share of an ingest's validation, profiled).
    if value.len() <= max_chars && value.bytes().all(|b| b.is_ascii() && charset.accepts(char::from(b))) {
        return Ok(());
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(Error::invalid(
            field,
            format!("is {chars} characters long; the limit is {max_chars}"),
        ));
    }
    if let Some(bad) = value.chars().find(|&c| !charset.accepts(c)) {
        return Err(Error::invalid(
            field,
            format!("contains {bad:?}; allowed: {}", charset.describe()),
        ));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, field: $field:literal, max: $max:expr, charset: $charset:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "Arc<str>")]
        pub struct $name(Arc<str>);

        /// A string of 1 to `MAX_CHARS` characters of its charset, as the OpenAPI document
        /// states it (so generated clients and fuzzers send what validation accepts).
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some(Charset::$charset.pattern()))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// The longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;
            /// The field name used in validation errors.
            pub const FIELD: &'static str = $field;

            /// Validates `value`; the error names the field as the API spells it.
            pub fn parse(value: impl AsRef<str>) -> Result<Self> {
                let value = value.as_ref();
                validate($field, value, $max, Charset::$charset)?;
                Ok(Self(Arc::from(value)))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The shared string, for stores that intern values.
            pub fn as_arc(&self) -> &Arc<str> {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::parse(value)
            }
        }

        impl From<$name> for Arc<str> {
            fn from(value: $name) -> Arc<str> {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

text_type!(
    /// A tenant: the unit of isolation. 1–64 ASCII letters, digits, `_ - . :`.
    TenantId, field: "tenantId", max: 64, charset: Identifier
);
text_type!(
    /// An event's idempotency key, unique per tenant. 1–128 ASCII letters, digits, `_ - . :`.
    /// Generated (UUIDv7) when the client sends none.
    EventId, field: "id", max: 128, charset: Identifier
);
text_type!(
    /// The user an event belongs to. 1–256 characters, no control characters.
    UserId, field: "userId", max: 256, charset: Printable
);
text_type!(
    /// A session id. 1–256 characters, no control characters.
    SessionId, field: "sessionId", max: 256, charset: Printable
);
text_type!(
    /// What happened: `click`, `PAGE_VIEW`, `CONVERSION`, … 1–64 ASCII letters, digits, `_ - . :`.
    EventType, field: "eventType", max: 64, charset: Identifier
);
text_type!(
    /// The page (path or URL) an event happened on. 1–2048 characters, no control characters.
    Page, field: "page", max: 2048, charset: Printable
);
text_type!(
    /// Browser name. 1–64 characters, no control characters.
    Browser, field: "browser", max: 64, charset: Printable
);
text_type!(
    /// Device class (`desktop`, `mobile`, …). 1–64 characters, no control characters.
    Device, field: "device", max: 64, charset: Printable
);
text_type!(
    /// Country name or code. 1–64 characters, no control characters.
    Country, field: "country", max: 64, charset: Printable
);
text_type!(
    /// An experiment's id, as events reference it. 1–64 ASCII letters, digits, `_ - . :`.
    ExperimentId, field: "experimentId", max: 64, charset: Identifier
);
text_type!(
    /// A variant's key within an experiment (`A`, `control`, …). 1–64 ASCII letters, digits,
    /// `_ - . :`.
    VariantKey, field: "variant", max: 64, charset: Identifier
);

impl EventType {
    /// The default conversion event type of an experiment.
    pub fn conversion() -> Self {
        Self(Arc::from("CONVERSION"))
    }

    /// The event type of a recorded experiment exposure
    /// ([`Analytics::record_exposure`](crate::Analytics::record_exposure)).
    pub fn exposure() -> Self {
        Self(Arc::from("EXPOSURE"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_names_the_field_when_rejecting() {
        assert_eq!(TenantId::parse("acme-1").unwrap().as_str(), "acme-1");
        let err = TenantId::parse("acme corp").unwrap_err();
        assert!(matches!(&err, Error::InvalidInput { field, .. } if field == "tenantId"));
        assert!(err.to_string().contains("' '"), "{err}");
        let err = EventType::parse("").unwrap_err();
        assert!(err.to_string().contains("eventType"));
        let long = "x".repeat(65);
        assert!(EventType::parse(&long).unwrap_err().to_string().contains("limit is 64"));
        assert!(Page::parse("/café?q=1").is_ok());
        assert!(Page::parse("/a\nb").is_err());
    }

    #[test]
    fn serde_validates() {
        let ok: UserId = serde_json::from_str("\"u-1\"").unwrap();
        assert_eq!(ok.as_str(), "u-1");
        let bad = serde_json::from_str::<EventType>("\"a b\"").unwrap_err();
        assert!(bad.to_string().contains("eventType"), "{bad}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"u-1\"");
    }
}
