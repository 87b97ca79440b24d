fn main() {
    std::process::exit(keyway::cli::run());
}
