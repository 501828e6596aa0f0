//! Output path names: secrets, reserved names, safe relative paths, what may be removed.

use crate::walk::Rendered;

use super::lock::LOCK_FILE;
use super::manifest::MANIFEST_FILE;

/// Suffix of temporary files: `<dir>/.<name>.render-tmp`.
const TMP_SUFFIX: &str = ".render-tmp";

/// Whether an output path is a secret: its file name contains `.sops.`
/// (`cluster-secrets.sops.yaml`). The sops configuration `.sops.yaml` itself is not.
pub fn is_secret(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.trim_start_matches('.').contains(".sops.")
}

/// Names the output stage keeps for itself; no template may produce them.
pub(crate) fn is_reserved(path: &str) -> bool {
    path == MANIFEST_FILE || path == LOCK_FILE || path.ends_with(TMP_SUFFIX)
}

/// Whether the output stage may remove `path` because the manifest lists it: only a path some
/// template could have produced ([`Rendered::producible`]: under a top-level folder the shipped
/// `config/` templates write to), and never anything inside `.git`. The manifest is repository
/// content, so its list alone is no proof that configure wrote a file.
pub fn may_remove(rendered: &Rendered, path: &str) -> bool {
    is_safe_relative(path)
        && !is_reserved(path)
        && !is_inside_git(path)
        && rendered.producible.contains(path)
}

/// Whether a `/`-separated path has a `.git` component (any case): no output is written or
/// removed there (a hook would run code on the next git command).
pub(crate) fn is_inside_git(path: &str) -> bool {
    path.split('/').any(|c| c.eq_ignore_ascii_case(".git"))
}

pub(super) fn parent_of(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

pub(super) fn temp_path(rel: &str) -> String {
    match rel.rfind('/') {
        Some(i) => format!("{}/.{}{TMP_SUFFIX}", &rel[..i], &rel[i + 1..]),
        None => format!(".{rel}{TMP_SUFFIX}"),
    }
}

/// A `/`-separated relative path with no empty, `.` or `..` component.
pub(super) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        assert!(is_secret("kubernetes/flux/cluster-secrets.sops.yaml"));
        assert!(is_secret("talos/talsecret.sops.yaml"));
        assert!(is_secret("x.sops.env"));
        assert!(!is_secret(".sops.yaml"));
        assert!(!is_secret("kubernetes/.sops.yaml"));
        assert!(!is_secret("kubernetes/sops.yaml"));
    }

    #[test]
    fn paths() {
        assert_eq!(temp_path("a/b/c.yaml"), "a/b/.c.yaml.render-tmp");
        assert_eq!(temp_path(".sops.yaml"), "..sops.yaml.render-tmp");
        assert!(is_reserved(&temp_path("a/b")));
        assert_eq!(parent_of("a/b/c"), "a/b");
        assert_eq!(parent_of("c"), "");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "C:x",
        ] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
        assert!(is_safe_relative(".sops.yaml"));
        assert!(is_safe_relative("kubernetes/apps/x.yaml"));
    }

    #[test]
    fn only_producible_paths_outside_git_may_be_removed() {
        let rendered = Rendered {
            producible: ["kubernetes/a.yaml", ".git/HEAD", "talos/x.yaml"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            ..Rendered::default()
        };
        assert!(may_remove(&rendered, "kubernetes/a.yaml"));
        assert!(may_remove(&rendered, "talos/x.yaml"));
        // Listed as producible by a hostile override, still never.
        assert!(!may_remove(&rendered, ".git/HEAD"));
        for other in [
            "kubernetes/b.yaml",
            "README.md",
            "templates/config/a.j2",
            "../x",
        ] {
            assert!(!may_remove(&rendered, other), "{other}");
        }
    }
}
