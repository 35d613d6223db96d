//! Lays out the functions an attach runs side by side in release builds of the service.
//!
//! `bench/hot-functions.txt` (written by `bench/hot-functions.sh`) lists them; lld, Rust's
//! default linker for x86_64 Linux, places them in that order, so the attach path's code
//! spans fewer pages and stays in the CPU's caches (see the README's Performance section).
//! Another linker, set in cargo's configuration or in RUSTFLAGS, may not know the option, so
//! the list is handed over only when none is set.

use std::env;
use std::path::Path;

const LIST: &str = "bench/hot-functions.txt";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let wanted = env::var("PROFILE").as_deref() == Ok("release")
        && env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && env::var_os("RUSTC_LINKER").is_none()
        && !env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|flags| flags.contains("link"));
    let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(LIST);
    if wanted && list.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=mcp-asana-linker=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        // A function the list names but the build no longer has (renamed, or inlined away)
        // is not worth a warning: the list is a layout hint, refreshed by the script.
        println!("cargo:rustc-link-arg-bin=mcp-asana-linker=-Wl,--no-warn-symbol-ordering");
    }
}
