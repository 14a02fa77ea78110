//! The dashboard (feature `dashboard`): one page at `/` and `/dashboard`, its script and styles
//! under `/dashboard/assets/`, all compiled into the binary (no CDN, no Node.js to build).
//!
//! The page calls only the public API, with the caller's own credentials, so it can do nothing
//! a client of the API could not. Charts are drawn by [uPlot](https://github.com/leeoniya/uPlot)
//! (MIT, vendored with its licence under `dashboard/vendor/uplot/`): 51 KB minified, 22 KB
//! gzipped, fast on thousands of points, and no framework.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

/// A compiled-in file: its bytes and content type.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../dashboard/index.html");

/// A script of the page, by file name (they are ES modules importing each other).
macro_rules! script {
    ($name:literal) => {
        Asset {
            name: $name,
            content_type: "text/javascript; charset=utf-8",
            bytes: include_bytes!(concat!("../dashboard/", $name)),
        }
    };
}

const ASSETS: [Asset; 12] = [
    script!("app.js"),
    script!("api.js"),
    script!("render.js"),
    script!("overview.js"),
    script!("live.js"),
    script!("events.js"),
    script!("generator.js"),
    script!("experiments.js"),
    script!("operations.js"),
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../dashboard/app.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../dashboard/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../dashboard/vendor/uplot/uPlot.min.css"),
    },
];

/// Scripts and styles only from this server, and no framing: the page runs nothing it did not
/// ship, and an API key typed into it cannot be read by an injected script or a framing page.
/// `style-src` allows inline style *attributes*, which the chart library sets on its elements.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The dashboard's routes, to merge into the application router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/assets/{name}", get(asset))
}

async fn index() -> Response {
    respond(INDEX, "text/html; charset=utf-8", "no-cache")
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        // Short-lived: a new binary's assets are picked up within minutes without versioned names.
        Some(a) => respond(a.bytes, a.content_type, "public, max-age=300"),
        None => ApiError::for_status(StatusCode::NOT_FOUND).into_response(),
    }
}

fn respond(bytes: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
