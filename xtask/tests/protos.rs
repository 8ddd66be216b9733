//! The committed ONNX protobuf code is what prost generates from the vendored schema.

#[test]
fn protos_are_up_to_date() {
    let fresh = xtask::protos::generate().expect("generating from onnx.proto");
    let path = xtask::protos::generated_path();
    let committed = std::fs::read_to_string(&path).expect("reading the committed file");
    assert!(
        committed == fresh,
        "{} is stale: run `cargo xtask protos`",
        path.display()
    );
}
