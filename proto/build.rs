//! Compiles every `.proto` under `proto/shopbridge/` with protox (pure Rust), so building needs no system `protoc`.
//! The encoded descriptor set is written to `OUT_DIR` for gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn proto_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read proto dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            proto_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

/// Messages with a secret field: their Debug is written by hand so a secret never reaches a log.
const SECRET_BEARING: [&str; 9] = [
    "shopbridge.auth.v1.GetShopCredentialsResponse",
    "shopbridge.auth.v1.IssueTokenRequest",
    "shopbridge.auth.v1.IssueTokenResponse",
    "shopbridge.auth.v1.CreateApiClientResponse",
    "shopbridge.auth.v1.ConnectWithTokenRequest",
    "shopbridge.gateway.v1.ShopAccessToken",
    "shopbridge.gateway.v1.ExchangeCodeRequest",
    "shopbridge.gateway.v1.RefreshTokenRequest",
    "shopbridge.gateway.v1.VerifyTokenRequest",
];

fn main() {
    let mut files = Vec::new();
    proto_files(std::path::Path::new("shopbridge"), &mut files);
    files.sort();
    println!("cargo:rerun-if-changed=shopbridge");

    let fds = protox::compile(&files, ["."]).expect("compile .proto files");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    fs::write(
        out_dir.join("shopbridge_descriptor.bin"),
        fds.encode_to_vec(),
    )
    .expect("write descriptor set");

    // Type names (prost::Name) let the bus derive subjects and the message-type header from the message itself.
    let mut config = tonic_prost_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], "type.shopbridge.dev");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Messages that carry secrets get a hand-written Debug that redacts them (src/redacted.rs).
        .skip_debug(SECRET_BEARING)
        .include_file("mod.rs")
        .compile_fds_with_config(fds, config)
        .expect("generate Rust code");
}
