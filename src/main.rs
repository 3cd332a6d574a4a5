fn main() -> std::process::ExitCode {
    cyclegan::cli::main()
}
