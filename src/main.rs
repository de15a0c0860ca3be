fn main() {
    std::process::exit(warden_cli::run())
}
