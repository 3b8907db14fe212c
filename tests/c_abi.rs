use std::path::{Path, PathBuf};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("c_abi")
}

fn generated_header() -> String {
    let dir = example_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("examples/c_abi/cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("lib.rs"))
        .generate()
        .expect("cbindgen generates the header from examples/c_abi/lib.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_current() {
    let fresh = generated_header();
    let path = example_dir().join("touchpoint.h");
    if std::env::var_os("TP_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == fresh, "stale header");
}
