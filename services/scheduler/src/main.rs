fn main() -> std::process::ExitCode {
    shopbridge_platform::cli::run(&shopbridge_scheduler::SPEC, shopbridge_scheduler::build)
}
