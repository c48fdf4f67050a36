//! `cargo run -p bkv-vectors`: regenerate `vectors/v1/*.json` and the schema.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let root = bkv_vectors::root();
    for (path, contents) in bkv_vectors::outputs(&root) {
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return std::process::ExitCode::from(2);
        }
        if let Err(e) = std::fs::write(&path, contents) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return std::process::ExitCode::from(2);
        }
        println!("wrote {}", path.display());
    }
    std::process::ExitCode::SUCCESS
}
