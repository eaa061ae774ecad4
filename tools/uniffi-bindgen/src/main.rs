//! uniffi's bindings generator, pinned to the version eid-bindings uses.
fn main() {
    uniffi::uniffi_bindgen_main()
}
