//! The five high-load scenarios — traffic spike, circuit breaker, cache performance, graceful
//! degradation, integration — with their figures and pass or fail. Exits non-zero when a
//! scenario fails.
//!
//! ```text
//! cargo run --release --example high_load                   # against the embedded default, in process
//! cargo run --release --example high_load -- --url http://127.0.0.1:3001   # a running demo server
//! cargo run --release --example high_load -- --off breaker  # the same with the breaker switched off
//! ```
//!
//! Options: `--url URL` (a server started by `--example demo`: the scenarios need its fault
//! switch), `--spike N` (concurrent requests of the spike, default 100), `--off MECHANISM`
//! (in process only; `breaker`, `cache`, `limits` or `shedding`, repeatable: shows that the
//! scenario of that mechanism then fails), `--json` (the report as JSON).

use std::process::ExitCode;

use analytics_http::HttpConfig;
use analytics_http::demo::{self, DemoServer, Report, ScenarioOptions, SwitchedOff};

struct Args {
    url: Option<String>,
    spike: usize,
    off: SwitchedOff,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: None,
        spike: 100,
        off: SwitchedOff::default(),
        json: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| words.next().ok_or_else(|| format!("{name} needs a value"));
        match word.as_str() {
            "--url" => args.url = Some(value("--url")?),
            "--spike" => {
                args.spike = value("--spike")?
                    .parse()
                    .map_err(|_| "--spike wants a number of requests".to_owned())?
            }
            "--off" => match value("--off")?.as_str() {
                "breaker" => args.off.breaker = true,
                "cache" => args.off.cache = true,
                "limits" => args.off.limits = true,
                "shedding" => args.off.shedding = true,
                other => return Err(format!("--off {other}: choose breaker, cache, limits or shedding")),
            },
            "--json" => args.json = true,
            "-h" | "--help" => {
                return Err(
                    "usage: high_load [--url URL] [--spike N] [--off breaker|cache|limits|shedding]… [--json]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.url.is_some() && args.off != SwitchedOff::default() {
        return Err("--off applies to the in-process server only, not to --url".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let base_url = match &args.url {
        Some(url) => url.clone(),
        None => match start_in_process(args.off).await {
            Ok(url) => url,
            Err(error) => {
                eprintln!("could not start the in-process server: {error}");
                return ExitCode::from(2);
            }
        },
    };
    let mut options = ScenarioOptions::new(base_url.clone());
    options.spike = args.spike;
    if !args.json {
        println!("Running the high-load scenarios against {base_url}…\n");
    }
    let report = demo::scenarios::run(&options).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        );
    } else {
        print_report(&report);
    }
    if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn start_in_process(off: SwitchedOff) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let (analytics, faults) = demo::analytics(off)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = DemoServer::serve(listener, analytics, faults, HttpConfig::default()).await?;
    Ok(server.base_url)
}

fn print_report(report: &Report) {
    for (n, scenario) in report.scenarios.iter().enumerate() {
        let verdict = if scenario.passed { "PASS" } else { "FAIL" };
        println!("{}. {:<22} {verdict}", n + 1, scenario.name);
        for (name, value) in &scenario.figures {
            println!("     {name:<28} {value}");
        }
        for line in &scenario.log {
            println!("     · {line}");
        }
        for failure in &scenario.failures {
            println!("     ✗ {failure}");
        }
        println!();
    }
    let passed = report.scenarios.iter().filter(|s| s.passed).count();
    println!(
        "{passed}/{} scenarios passed in {:.1} s",
        report.scenarios.len(),
        report.seconds
    );
}
