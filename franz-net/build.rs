//! Generates the gRPC types and stubs of `proto/franz/v1/franz.proto` into OUT_DIR,
//! with the protoc binary that the protoc-bin-vendored crate ships.

fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc for this platform");
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=../proto/franz/v1/franz.proto");
    tonic_build::configure()
        .compile_protos(&["../proto/franz/v1/franz.proto"], &["../proto"])
        .expect("compiling proto/franz/v1/franz.proto failed");
}
