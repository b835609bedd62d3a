fn main() -> std::process::ExitCode {
    shopbridge_platform::cli::run(&shopbridge_orders::SPEC, shopbridge_orders::build)
}
