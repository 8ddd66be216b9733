//! The `ember` command line.

fn main() {
    if let Err(msg) = ember_tensor::simd::check_cpu() {
        eprintln!("ember: {msg}");
        std::process::exit(2);
    }
    println!(
        "ember {} (simd: {})",
        env!("CARGO_PKG_VERSION"),
        ember_tensor::simd::active_isa()
    );
}
