//! `shopbridge`: the operator CLI. Everything is in the library; see [`shopbridge_cli::main`].

fn main() -> std::process::ExitCode {
    shopbridge_cli::main()
}
