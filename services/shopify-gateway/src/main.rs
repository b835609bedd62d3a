fn main() -> std::process::ExitCode {
    shopbridge_platform::cli::run(&shopbridge_gateway::SPEC, shopbridge_gateway::build)
}
