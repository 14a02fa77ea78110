//! The OpenAPI document, as the server's configuration makes it true: the API-key scheme with
//! `--auth api-key`; with `--auth header` no security scheme (the tenant header is not a
//! credential: any tenant a gateway names is served) and `X-Tenant-Id` as a header parameter of
//! every tenant-scoped operation, required unless a default tenant is configured.

use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Ref, Required};

use crate::TENANT_HEADER;
use crate::routes::{cache, events, experiments, health, ops, stream, summary};
use crate::state::{AuthMode, HttpConfig};

/// The OpenAPI document of the API (served at `/openapi.json`). Paths are listed under `/api`;
/// `/api/v1` serves the same routes.
#[derive(OpenApi)]
#[openapi(
    info(title = "analytics", description = "Analytics-dashboard queries over user events."),
    paths(
        summary::summary, summary::summary_paginated, stream::summary_stream, summary::realtime,
        health::health, cache::cache_stats, cache::cache_clear, cache::cache_warm,
        events::create, events::create_batch, events::list,
        experiments::create, experiments::list, experiments::get, experiments::update,
        experiments::assign, experiments::expose, experiments::results,
        ops::liveness, ops::metrics, ops::openapi,
    ),
    components(schemas(analytics_core::ComparedSummary)),
    modifiers(&SecuritySchemes, &CommonResponses),
    security(("apiKey" = [])),
)]
pub struct ApiDoc;

/// The API-key scheme, the document's default security; [`ApiDoc::for_config`] removes it for
/// a server in header mode.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

impl ApiDoc {
    /// The document as true for a server configured with `config` (served at `/openapi.json`).
    pub fn for_config(config: &HttpConfig) -> utoipa::openapi::OpenApi {
        let mut doc = Self::openapi();
        if config.auth == AuthMode::Header {
            doc.security = None;
            if let Some(components) = doc.components.as_mut() {
                components.security_schemes.clear();
            }
            let required = if config.default_tenant.is_some() {
                Required::False
            } else {
                Required::True
            };
            for operation in doc.paths.paths.values_mut().flat_map(operations) {
                // Tenant-scoped operations inherit the document's security; the others clear it.
                if operation.security.is_none() {
                    add_tenant_header(operation, required.clone());
                }
            }
        }
        doc
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.patch,
        &mut item.put,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

fn add_tenant_header(operation: &mut Operation, required: Required) {
    let description = match required {
        Required::True => "The tenant the request acts for, as the gateway in front of the server names it",
        Required::False => "The tenant the request acts for; without it, the server's default tenant",
    };
    let header = ParameterBuilder::new()
        .name("X-Tenant-Id")
        .parameter_in(ParameterIn::Header)
        .required(required)
        .description(Some(description))
        .schema(Some(Ref::from_schema_name("TenantId")))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(header);
    if let Some(utoipa::openapi::RefOr::T(response)) = operation.responses.responses.get_mut("401") {
        response.description = format!("No `{TENANT_HEADER}` header and no default tenant");
    }
}

/// The error statuses every route of a kind can answer, stated once for all of them rather than
/// on each handler: any route refuses a bad parameter (400); a tenant-scoped one may refuse the
/// caller (401, 403), limit it (429) or be unavailable (503); one with a body may refuse the
/// body (408, 413, 415, 422).
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = |description: &str| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", content)
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let mut statuses = vec![("400", "A malformed, unknown or repeated parameter or header, named")];
                // Tenant-scoped routes inherit the document's security; the others clear it.
                if operation.security.is_none() {
                    statuses.extend([
                        ("401", "No credential, or one the server does not know"),
                        ("403", "A body or parameter naming another tenant"),
                        ("429", "Over the rate limit; `Retry-After` says when to try again"),
                        (
                            "503",
                            "Overloaded or a backend unavailable; `Retry-After` says when to try again",
                        ),
                    ]);
                }
                if operation.request_body.is_some() {
                    statuses.extend([
                        ("408", "The body stopped arriving"),
                        ("413", "The body is over the limit"),
                        ("415", "The body is not JSON"),
                        ("422", "A body that does not validate, the field named"),
                    ]);
                }
                for (status, description) in statuses {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                }
            }
        }
    }
}
