//! Compiles the `.slint` screens, with the bundled translations (`lang/`, strings without a
//! context) and the debug information the tests need to find elements by their labels.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_bundled_translations("lang")
        .with_default_translation_context(slint_build::DefaultTranslationContext::None)
        .with_debug_info(true);
    slint_build::compile_with_config("ui/app.slint", config).expect("compiling the Slint UI");
    println!("cargo:rerun-if-changed=lang");
}
