//! The `pqgate` binary: the command line in [`pqgate::cli`].

fn main() -> std::process::ExitCode {
    pqgate::cli::main()
}
