//! Every `@tr` string of the screens has its Chinese translation in the bundled `.po` file
//! (a missing one would show English on a Chinese screen without any error).

use std::collections::HashSet;
use std::path::Path;

fn tr_strings(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("ui/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            tr_strings(&path, out);
        } else if path.extension().is_some_and(|e| e == "slint") {
            let text = std::fs::read_to_string(&path).expect("a .slint file");
            for piece in text.split("@tr(\"").skip(1) {
                let mut s = String::new();
                let mut chars = piece.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => s.extend(chars.next()),
                        '"' => break,
                        c => s.push(c),
                    }
                }
                out.push(s);
            }
        }
    }
}

fn po_ids(po: &str) -> HashSet<String> {
    po.lines()
        .filter_map(|l| l.strip_prefix("msgid \""))
        .filter_map(|l| l.strip_suffix('"'))
        .map(|s| s.replace("\\\"", "\"").replace("\\\\", "\\"))
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn every_string_on_the_screens_has_a_chinese_translation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut strings = Vec::new();
    tr_strings(&root.join("ui"), &mut strings);
    assert!(
        strings.len() > 50,
        "found only {} @tr strings",
        strings.len()
    );
    let po = std::fs::read_to_string(root.join("lang/zh_CN/LC_MESSAGES/kiosk-ui.po"))
        .expect("the zh_CN translation file");
    let ids = po_ids(&po);
    let missing: Vec<&String> = strings.iter().filter(|s| !ids.contains(*s)).collect();
    assert!(missing.is_empty(), "untranslated: {missing:#?}");
    let empty = po.contains("msgstr \"\"\n\n");
    assert!(!empty, "a translation is empty");
}
