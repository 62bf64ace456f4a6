//! Where the files shipped with the lab are looked up (scenarios, system definitions): the
//! directory of that name under the current directory, then the workspace's, as compiled in.

use std::path::{Path, PathBuf};

/// `./SUBDIR` and the workspace's `SUBDIR` when it exists.
pub fn dirs(subdir: &str) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(subdir)];
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(subdir);
    if workspace.is_dir() {
        dirs.push(workspace);
    }
    dirs
}

/// Stems of the `.toml` files in [`dirs`]`(subdir)`, sorted, each once.
pub fn toml_names(subdir: &str) -> Vec<String> {
    dirs(subdir)
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}
