use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Errors of the Delta kernel carry a backtrace when RUST_BACKTRACE=1; their text becomes
    // findings and report fields, which are evidence for people, so library backtraces are off
    // (panics still print theirs).
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    let cli = restore_drill::cli::Cli::parse();
    restore_drill::cli::init_tracing(cli.default_log_filter());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(restore_drill::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.code)
        }
    }
}
