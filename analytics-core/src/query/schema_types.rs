//! Documentation types of the OpenAPI document (feature `openapi`): the shapes of request
//! fields that travel as strings but accept only some, so generated clients and API fuzzers send
//! what the parser takes. Parsing stays in [`Query::parse`](super::Query::parse).

/// The documented shape of a range bound (`startDate`, `endDate`): `YYYY-MM-DD` or an RFC 3339
/// instant, from 1970 on. Only the document uses it.
pub struct DateBound;

impl utoipa::PartialSchema for DateBound {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
        // Years 1970–9999: what the query accepts (a bucket past 9999 has no RFC 3339 form).
        let from_1970 = "^(19[7-9][0-9]|[2-9][0-9]{3})-";
        let of = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
                .pattern(Some(from_1970))
        };
        AnyOfBuilder::new()
            .item(of(KnownFormat::Date))
            .item(of(KnownFormat::DateTime))
            .into()
    }
}

impl utoipa::ToSchema for DateBound {}

/// The documented shape of `timezone`: one of the IANA names the server knows.
pub struct TimezoneName;

impl utoipa::PartialSchema for TimezoneName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .into()
    }
}

impl utoipa::ToSchema for TimezoneName {}
