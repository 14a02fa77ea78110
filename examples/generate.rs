//! Prints generated events as JSON lines (the seeded generator the demo and benches use), for
//! feeding other tools: `cargo run --release --example generate -- EVENTS [SEED] [DAYS]`.
//!
//! Events span the `DAYS` days (default 90) before 2024-06-30T00:00:00Z over three tenants.

use std::io::{BufWriter, Write};

use analytics_core::generator::{EventGenerator, GeneratorConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let mut next = |default: u64| match args.next() {
        None => Ok(default),
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("expected a number: {e}"),
        )),
    };
    let (events, seed, days) = (next(1000)?, next(42)?, next(90)?);
    let end = "2024-06-30T00:00:00Z".parse().expect("valid instant");
    let config = GeneratorConfig::new(seed, events as usize, end, u32::try_from(days).unwrap_or(u32::MAX));
    let mut out = BufWriter::new(std::io::stdout().lock());
    for event in EventGenerator::new(config) {
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
