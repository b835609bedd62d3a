fn main() -> std::process::ExitCode {
    shopbridge_platform::cli::run(&shopbridge_listings::SPEC, shopbridge_listings::build)
}
