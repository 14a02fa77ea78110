//! The `analytics-server` binary: flags and environment, assembling the facade from them, and
//! serving with graceful shutdown.
//!
//! ```text
//! analytics-server [--listen 127.0.0.1:3001] [--store memory|postgres://…] [--read-url postgres://…]
//!                  [--cache memory|redis://…] [--auth api-key|header]
//!                  [--bootstrap-tenant NAME:KEY]… [--rate-limit CLASS=LIMIT/SECONDS]…
//! analytics-server tenant create NAME [--store postgres://…]
//! ```
//!
//! With no flags it serves the embedded default (in-memory store, moka cache, in-process rate
//! limits) on 127.0.0.1:3001. Every flag has an `ANALYTICS_*` environment variable.
//!
//! The flags are in `flags`, the facade's assembly from them in `assemble`; this module runs
//! the command and serves.

mod assemble;
mod flags;

use std::time::Duration;

use analytics_core::model::TenantId;
use analytics_core::resilience::RateLimits;
use tokio::net::TcpListener;

pub use assemble::{bootstrap_tenant, build};
pub use flags::{Backends, Cli, Command, ReplicaWait, ServeArgs, TenantCommand, rate_limits};

use crate::state::{AppState, AuthMode, HttpConfig};

/// A startup failure, printed by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs the command line.
///
/// # Errors
/// Bad flags, unreachable backends, a listener that cannot bind.
pub async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Some(Command::Tenant {
            action: TenantCommand::Create { name },
        }) => create_tenant(&cli.backends, &name).await,
        None => serve(&cli.backends, &cli.serve).await,
    }
}

async fn create_tenant(backends: &Backends, name: &str) -> Result<(), BoxError> {
    if backends.store == "memory" {
        return Err("`tenant create` needs a persistent store: pass --store postgres://…".into());
    }
    let analytics = build(backends, RateLimits::default()).await?;
    let (tenant, key) = analytics.create_tenant(TenantId::parse(name)?, name).await?;
    println!(
        "tenant {} created; API key (shown once): {}",
        tenant.id.as_str(),
        key.expose()
    );
    Ok(())
}

async fn serve(backends: &Backends, args: &ServeArgs) -> Result<(), BoxError> {
    let limits = rate_limits(&args.rate_limits)?;
    let default_tenant = match (&args.default_tenant, args.auth) {
        (None, _) => None,
        (Some(name), AuthMode::Header) => Some(TenantId::parse(name)?),
        (Some(_), AuthMode::ApiKey) => {
            return Err(
                "--default-tenant needs --auth header (with API keys every caller names its tenant by its key)".into(),
            );
        }
    };
    let analytics = build(backends, limits).await?;
    for spec in &args.bootstrap_tenants {
        bootstrap_tenant(&analytics, spec).await?;
    }
    let config = HttpConfig {
        auth: args.auth,
        default_tenant,
        body_limit: args.body_limit,
        body_timeout: Duration::from_secs(args.body_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        ..HttpConfig::default()
    };
    let state = AppState::new(analytics, config);
    let listener = TcpListener::bind(args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("listening on http://{}", listener.local_addr()?);
    let app = crate::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            // Streams never end by themselves; in-flight requests and ingests are awaited.
            state.close_streams();
        })
        .await?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        // Without a handler only SIGTERM stops us, which is fine.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
