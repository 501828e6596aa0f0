//! `e2e/cluster.yaml` + `e2e/nodes.yaml`, rendered with the real templates into a temporary
//! directory, the way `cargo xtask configure` writes a repository.
//!
//! Why the libraries and not the `xtask` binary: cargo builds only this package's binaries for
//! its tests, so no `xtask` binary can be relied on, and `cargo run -p xtask` inside a test
//! would compile a second package under the build lock (slow, and racy with other builds).
//! So this runs configure's steps 1–4 with the same library calls (see
//! `xtask/src/configure.rs`): validate (`schema::load`), read the key files
//! (`render::Inputs::load` on a directory holding a throwaway age key made by `secrets` and fake
//! push token and tunnel credentials, as `configure --example` does), render in memory
//! (`render::render_templates`), seal every `*.sops.*` output with sops + age under the rendered
//! `.sops.yaml` (`secrets::encrypt`), and write (`render::plan` + `render::apply`, with the
//! render manifest). Only verify is left out. The harness itself runs the real commands (see
//! `e2e::harness::render_commands`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn workspace() -> PathBuf {
    crate_dir().join("..")
}

/// A rendered e2e repository: the tree and its `age.key` in one temporary directory.
pub struct Rendered {
    pub dir: tempfile::TempDir,
}

impl Rendered {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The identities of the throwaway age key (to decrypt what was sealed).
    pub fn identities(&self) -> Vec<secrets::Identity> {
        secrets::load_identities_from(&self.path().join(render::AGE_KEY_FILE)).unwrap()
    }
}

/// Render e2e/cluster.yaml and e2e/nodes.yaml (or `cluster` instead of e2e/cluster.yaml's text).
pub fn render_e2e() -> Rendered {
    let text = std::fs::read_to_string(crate_dir().join("cluster.yaml")).unwrap();
    render_config(&text)
}

pub fn render_config(cluster: &str) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_throwaway_keys(root);

    // 1. validate
    let cluster_path = root.join("cluster.yaml");
    std::fs::write(&cluster_path, cluster).unwrap();
    let nodes_path = crate_dir().join("nodes.yaml");
    let outcome = schema::load(&cluster_path, &nodes_path);
    let config = outcome.config.unwrap_or_else(|| {
        panic!(
            "the e2e config is invalid:\n{}",
            outcome
                .diagnostics
                .iter()
                .map(|d| d.render(Some(cluster)))
                .collect::<String>()
        )
    });

    // 2. key files, then render in memory
    let templates = workspace().join("templates");
    let (mut inputs, diags) = render::Inputs::load(root);
    assert!(
        !diags.iter().any(schema::Diagnostic::is_error),
        "key files: {diags:?}"
    );
    inputs.talos_patches = render::talos_patches(&templates);
    let rendered =
        render::render_templates(&templates, &config.context(), &inputs).unwrap_or_else(|d| {
            panic!(
                "rendering the e2e config failed:\n{}",
                d.iter().map(|d| d.render(None)).collect::<String>()
            )
        });

    // 3. seal, 4. write
    let sops_yaml = rendered
        .files
        .get(".sops.yaml")
        .map(|o| String::from_utf8(o.contents.clone()).unwrap())
        .expect("the templates render a .sops.yaml");
    let sealer = SopsSealer {
        config: secrets::SopsConfig::parse(&sops_yaml).unwrap(),
        identities: secrets::load_identities_from(&root.join(render::AGE_KEY_FILE)).unwrap(),
    };
    let plan = render::plan(
        root,
        rendered,
        &sealer,
        &render::PlanOptions { force: false },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    render::apply(&plan, &render::ApplyOptions { crash_after: None })
        .unwrap_or_else(|e| panic!("{e:?}"));
    Rendered { dir }
}

/// A new age key (mode 0600) and fake push token and tunnel credentials, like
/// `configure --example`; the repository is public, so no deploy key is needed.
fn write_throwaway_keys(dir: &Path) {
    let identity = secrets::Identity::generate().unwrap();
    let created = secrets::Clock::System.rfc3339();
    secrets::write_new_key_file(
        &dir.join(render::AGE_KEY_FILE),
        &secrets::KeyFile::new(&identity, &created),
    )
    .unwrap();
    std::fs::write(
        dir.join(render::PUSH_TOKEN_FILE),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(render::TUNNEL_FILE),
        "{\"AccountTag\":\"e2e-test\",\"TunnelSecret\":\"ZTJlLXRlc3Q=\",\"TunnelID\":\"00000000-0000-4000-8000-000000000000\"}\n",
    )
    .unwrap();
}

/// sops + age with the rendered creation rules, as configure's sealer does.
struct SopsSealer {
    config: secrets::SopsConfig,
    identities: Vec<secrets::Identity>,
}

impl render::Sealer for SopsSealer {
    fn seal(
        &self,
        path: &str,
        plaintext: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(plaintext).map_err(|e| e.to_string())?;
        let previous = previous
            .and_then(|p| std::str::from_utf8(p).ok())
            .map(|text| secrets::Previous {
                text,
                identities: &self.identities,
            });
        secrets::encrypt(path, text, &self.config, previous)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    }
}
