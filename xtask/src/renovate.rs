//! Where Renovate bumps versions, before and after `cargo xtask tidy`.
//!
//! Every pinned version has one source. Before `tidy` that is the template
//! (`templates/config/**/*.j2`): a Renovate bump of a rendered file would be overwritten by the
//! next `configure`, or stop it as a `render::conflict` once the file differs from what configure
//! wrote. So the shipped `.renovaterc.json5` ignores the rendered tree ([`BEFORE_TIDY`]). `tidy`
//! moves the templates away; from then on the rendered files are the only copy, and tidy rewrites
//! that one line to [`AFTER_TIDY`] so Renovate bumps them. The original file is kept beside the
//! moved machinery, so moving `.private/tidy-<time>/` back undoes this too.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// The Renovate config file of the repository root.
pub const CONFIG: &str = ".renovaterc.json5";

/// The `ignorePaths` line as shipped: the rendered top-level folders are left to `configure`.
pub const BEFORE_TIDY: &str = r#"  ignorePaths: ["**/*.sops.*", "**/node_modules/**", "**/tests/**", "kubernetes/**", "bootstrap/**", "talos/**"],"#;

/// The line `tidy` writes instead: the rendered files are now the versions' only copy.
pub const AFTER_TIDY: &str = r#"  ignorePaths: ["**/*.sops.*", "**/node_modules/**"],"#;

/// Largest config `tidy` reads; the shipped one is a few kB.
const MAX_BYTES: u64 = 1 << 20;

/// What `tidy` does with the Renovate config.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// No `.renovaterc.json5`: nothing to do.
    Absent,
    /// Already points Renovate at the rendered files (a second tidy).
    AlreadyAfterTidy,
    /// Rewrite: the new text, and the original bytes to keep.
    Switch { new_text: String, original: String },
    /// Left alone, with the reason for the user.
    Keep(String),
}

/// Decides, without writing anything.
pub fn plan(root: &Path) -> Plan {
    let text = match schema::repofile::read_text_under(root, Path::new(CONFIG), MAX_BYTES) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Plan::Absent,
        Err(e) => {
            return Plan::Keep(format!("{CONFIG}: not read ({}); {}", e.code(), e.help()));
        }
    };
    let is = |want: &str| text.lines().filter(|l| l.trim_end() == want).count();
    match (is(BEFORE_TIDY), is(AFTER_TIDY)) {
        (1, 0) => {
            let mut new_text = String::with_capacity(text.len());
            for line in text.split_inclusive('\n') {
                if line.trim_end() == BEFORE_TIDY {
                    new_text.push_str(AFTER_TIDY);
                    new_text.push_str(&line[line.trim_end().len()..]);
                } else {
                    new_text.push_str(line);
                }
            }
            Plan::Switch {
                new_text,
                original: text,
            }
        }
        (0, 1) => Plan::AlreadyAfterTidy,
        _ => Plan::Keep(format!(
            "{CONFIG}: its `ignorePaths` line is not the shipped one, so tidy leaves the file as it is\n  \
             help: remove \"kubernetes/**\", \"bootstrap/**\" and \"talos/**\" from `ignorePaths` yourself, \
             so that Renovate bumps the rendered files once the templates are gone"
        )),
    }
}

/// One line for tidy's list of what it will do.
pub fn describe(plan: &Plan) -> Option<String> {
    match plan {
        Plan::Switch { .. } => Some(format!(
            "{CONFIG}: `ignorePaths` no longer skips kubernetes/, bootstrap/, talos/ (Renovate then bumps the rendered files); the original is kept in the tidy folder"
        )),
        Plan::Keep(why) => Some(format!("warning: {why}")),
        Plan::Absent | Plan::AlreadyAfterTidy => None,
    }
}

/// Carries out a [`Plan::Switch`]: the original goes to `backup_dir/.renovaterc.json5` (never
/// overwriting), the new text replaces the config atomically (temporary file, then rename).
pub fn apply(root: &Path, backup_dir: &Path, plan: &Plan) -> Result<bool> {
    let Plan::Switch { new_text, original } = plan else {
        return Ok(false);
    };
    std::fs::create_dir_all(backup_dir)
        .with_context(|| format!("cannot create {}", backup_dir.display()))?;
    write_new(&backup_dir.join(CONFIG), original.as_bytes())?;
    schema::writefile::write_atomically(&root.join(CONFIG), new_text.as_bytes(), 0o644)
        .with_context(|| format!("cannot replace {}", root.join(CONFIG).display()))?;
    Ok(true)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../.renovaterc.json5");

    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d =
                std::env::temp_dir().join(format!("xtask-renovate-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn shipped_config_switches_to_the_rendered_files_and_keeps_the_original() {
        let dir = Dir::new("switch");
        std::fs::write(dir.0.join(CONFIG), SHIPPED).unwrap();
        let plan = plan(&dir.0);
        assert!(
            matches!(&plan, Plan::Switch { .. }),
            "the shipped config must carry the BEFORE_TIDY line exactly once: {plan:?}"
        );
        assert!(apply(&dir.0, &dir.0.join("backup"), &plan).unwrap());
        let after = std::fs::read_to_string(dir.0.join(CONFIG)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.0.join("backup").join(CONFIG)).unwrap(),
            SHIPPED
        );
        // Only that line changed.
        let changed: Vec<(&str, &str)> = SHIPPED
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed, vec![(BEFORE_TIDY, AFTER_TIDY)]);
        assert_eq!(SHIPPED.lines().count(), after.lines().count());
        // No temporary file is left beside it.
        let left: Vec<String> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(CONFIG) && n != CONFIG)
            .collect();
        assert!(left.is_empty(), "{left:?}");
        // A second tidy finds nothing to do.
        assert_eq!(super::plan(&dir.0), Plan::AlreadyAfterTidy);
    }

    #[test]
    fn before_tidy_ignores_every_folder_the_templates_render_into() {
        // A bump in a rendered file would be a render::conflict; so every top-level folder a
        // template writes into must be ignored until tidy (root files carry no versions).
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let outputs = render::template_outputs(&templates).expect("templates list");
        let mut tops: Vec<&str> = outputs
            .producible
            .iter()
            .filter_map(|p| p.split_once('/').map(|(top, _)| top))
            .collect();
        tops.dedup();
        assert!(!tops.is_empty());
        for top in tops {
            assert!(
                BEFORE_TIDY.contains(&format!("\"{top}/**\"")),
                "templates render into {top}/ but {CONFIG} does not ignore it before tidy"
            );
            assert!(!AFTER_TIDY.contains(&format!("\"{top}/**\"")));
        }
    }

    #[test]
    fn an_edited_line_or_a_symlink_is_left_alone_with_a_reason() {
        let dir = Dir::new("edited");
        let edited = SHIPPED.replace(BEFORE_TIDY, r#"  ignorePaths: ["kubernetes/**"],"#);
        std::fs::write(dir.0.join(CONFIG), &edited).unwrap();
        let p = plan(&dir.0);
        assert!(
            matches!(&p, Plan::Keep(why) if why.contains("help:")),
            "{p:?}"
        );
        assert!(!apply(&dir.0, &dir.0.join("backup"), &p).unwrap());
        assert_eq!(std::fs::read_to_string(dir.0.join(CONFIG)).unwrap(), edited);

        let link = Dir::new("link");
        std::fs::write(link.0.join("elsewhere.json5"), SHIPPED).unwrap();
        std::os::unix::fs::symlink(link.0.join("elsewhere.json5"), link.0.join(CONFIG)).unwrap();
        assert!(matches!(plan(&link.0), Plan::Keep(why) if why.contains("symlink")));
        assert_eq!(
            std::fs::read_to_string(link.0.join("elsewhere.json5")).unwrap(),
            SHIPPED
        );
        assert_eq!(plan(&Dir::new("absent").0), Plan::Absent);
    }
}
