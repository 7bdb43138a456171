//! Generates `include/sphana_llm.h` from `src/ffi` with cbindgen.
//!
//! The header is written to `$OUT_DIR/sphana_llm.h` and, when it differs, to
//! `include/sphana_llm.h` (which is committed; a test checks the committed copy is current).

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");

    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen failed to generate include/sphana_llm.h");
    let generated = out_dir.join("sphana_llm.h");
    bindings.write_to_file(&generated);

    let committed = crate_dir.join("include/sphana_llm.h");
    let new = std::fs::read(&generated).expect("read generated header");
    if std::fs::read(&committed).ok().as_deref() != Some(new.as_slice()) {
        std::fs::create_dir_all(crate_dir.join("include")).expect("create include/");
        std::fs::write(&committed, &new).expect("write include/sphana_llm.h");
    }
}
