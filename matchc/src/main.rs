//! `matchc`: the command-line program. See DESIGN.md's command-line
//! contract: exit 0 on success, 1 when the input is wrong or does not fit
//! (the message names the file, node or tensor), 2 on usage errors.

mod summary;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "matchc",
    version,
    about = "Deploys quantized neural networks onto heterogeneous microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks a .hwm hardware model: prints a summary, or every error.
    Check {
        /// A .hwm file, or the name of a shipped target.
        file: String,
    },
    /// Prints a .hwm file in canonical form.
    Fmt {
        file: PathBuf,
        /// Print nothing; exit 1 if the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Check { file } => {
            let (model, _platform) = match_targets::resolve(&file).map_err(|e| e.to_string())?;
            print!("{}", summary::summary(&model));
            Ok(ExitCode::SUCCESS)
        }
        Command::Fmt { file, check } => {
            let shown = file.display().to_string();
            let source = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: cannot read: {e}"))?;
            let formatted = match_dsl::format(&source, &shown).map_err(|d| d.render())?;
            if check {
                if formatted == source {
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("{shown}: not in canonical form (run `matchc fmt {shown}`)");
                    Ok(ExitCode::from(1))
                }
            } else {
                print!("{formatted}");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}
