fn main() -> std::process::ExitCode {
    shopbridge_platform::cli::run(&shopbridge_auth::SPEC, shopbridge_auth::build)
}
