//! spec/conventions.md §7: the error-code registry and `bkv_protocol::Error` agree
//! code for code. The registry is parsed out of the spec text, so neither can drift.

use bkv_protocol::Error;
use std::collections::BTreeSet;

fn registry_codes() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/conventions.md");
    let text = std::fs::read_to_string(path).expect("spec/conventions.md");
    let registry = text.split("## 7. Error-code registry").nth(1).expect("registry section");
    // The registry ends at the next top-level section (§8 lists operational codes of the
    // reference tools, which are not protocol errors).
    let registry = registry.split("\n## ").next().expect("section text");
    registry
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn spec_registry_equals_error_enum() {
    let listed = registry_codes();
    let spec: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(spec.len(), listed.len(), "a code is listed twice in the spec registry");
    let code: BTreeSet<String> = Error::ALL.iter().map(|e| e.code().to_owned()).collect();
    let only_spec: Vec<_> = spec.difference(&code).collect();
    let only_code: Vec<_> = code.difference(&spec).collect();
    assert!(
        only_spec.is_empty() && only_code.is_empty(),
        "only in spec: {only_spec:?}; only in code: {only_code:?}"
    );
}

/// What `spec/<file>.md §N` may name (spec/README.md, "Citing the spec"): a heading
/// `## N.` or `### N.M`, or, in a section `N` without subsections, item `M` of its
/// top-level numbered list (`M. ` at the start of a line).
fn spec_sections(file: &str) -> Option<BTreeSet<String>> {
    let path = format!("{}/../spec/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).ok()?;
    let number = |l: &str| {
        let n = l.trim_start_matches('#').split_whitespace().next()?.trim_end_matches('.').to_owned();
        n.chars().next().is_some_and(|c| c.is_ascii_digit()).then_some(n)
    };
    let mut out = BTreeSet::new();
    let (mut section, mut has_subsections, mut items) = (None::<String>, false, Vec::new());
    let close = |section: &Option<String>,
                 has_subsections: bool,
                 items: &mut Vec<String>,
                 out: &mut BTreeSet<String>| {
        if let (Some(s), false) = (section, has_subsections) {
            out.extend(items.iter().map(|i| format!("{s}.{i}")));
        }
        items.clear();
    };
    for line in text.lines() {
        if line.starts_with("## ") {
            close(&section, has_subsections, &mut items, &mut out);
            section = number(line);
            has_subsections = false;
            out.extend(section.clone());
        } else if line.starts_with("### ") || line.starts_with("#### ") {
            has_subsections = true;
            out.extend(number(line));
        } else if let Some((n, _)) = line.split_once(". ")
            && !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
        {
            items.push(n.to_owned());
        }
    }
    close(&section, has_subsections, &mut items, &mut out);
    Some(out)
}

/// Every `spec/<file>.md §N` cited in the code of the workspace (doc comments included).
fn citations() -> Vec<(String, String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable tree") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "corpus" | "node_modules" | "__pycache__") {
                    stack.push(path);
                }
                continue;
            }
            if !name.ends_with(".rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(at) = rest.find("spec/") {
                    rest = &rest[at + 5..];
                    let Some(md) = rest.find(".md") else { break };
                    let file = &rest[..md];
                    if !file.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
                        continue;
                    }
                    let after = &rest[md + 3..];
                    let Some(section) = after.strip_prefix(" §") else { continue };
                    let number: String =
                        section.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
                    let number = number.trim_end_matches('.').to_owned();
                    if !number.is_empty() {
                        out.push((format!("{}:{}", path.display(), i + 1), format!("{file}.md"), number));
                    }
                }
            }
        }
    }
    out
}

/// Every `spec/<file>.md §N` cited in code names a section heading that exists.
#[test]
fn every_cited_spec_section_exists() {
    let cited = citations();
    assert!(cited.len() > 100, "the scan found only {} citations", cited.len());
    let mut missing = Vec::new();
    for (at, file, number) in &cited {
        match spec_sections(file) {
            None => missing.push(format!("{at}: spec/{file} does not exist")),
            Some(sections) if !sections.contains(number) => {
                missing.push(format!("{at}: spec/{file} has no §{number}"))
            }
            Some(_) => {}
        }
    }
    assert!(missing.is_empty(), "{} citations of missing sections:\n{}", missing.len(), missing.join("\n"));
}
