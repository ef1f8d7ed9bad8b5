//! The `franz` command-line tool.

use clap::Parser;

/// Produces, consumes and administers a Franz cluster. Commands arrive with the broker's
/// Kafka listener.
#[derive(Parser, Debug)]
#[command(name = "franz", version, about)]
struct Args {}

fn main() {
    let _args = Args::parse();
    println!("franz {}: no commands yet; see README.md", env!("CARGO_PKG_VERSION"));
}
