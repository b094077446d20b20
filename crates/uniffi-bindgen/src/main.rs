//! `uniffi-bindgen generate --library target/debug/libkiemtra_mobile.so
//! --language kotlin|swift|python --out-dir target/bindings/…`

fn main() {
    uniffi::uniffi_bindgen_main()
}
