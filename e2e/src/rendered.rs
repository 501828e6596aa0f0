//! The rendered tree (output of `cargo xtask configure`), read back as Kubernetes objects.
//!
//! Nothing about the AI Gateway is hard-coded here: the installer and the checks find Helm
//! charts through `HelmRelease.spec.chartRef` → `OCIRepository` (`spec.url`, `spec.ref.tag`,
//! `spec.values`), Flux Kustomizations through `ks.yaml` files (namespace from the enclosing
//! namespace-level `kustomization.yaml`, `dependsOn`, `targetNamespace`), and every other object
//! with the namespace Flux would give it (the owning Kustomization's `targetNamespace`).
//! Encrypted `*.sops.yaml` documents are listed but their values are never read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One YAML document of one rendered file.
#[derive(Debug, Clone)]
pub struct Document {
    /// Path relative to the tree root, with `/` separators.
    pub file: String,
    /// Position of the document in its file (0-based).
    pub index: usize,
    pub value: Value,
}

impl Document {
    pub fn kind(&self) -> &str {
        str_at(&self.value, "/kind")
    }

    pub fn api_version(&self) -> &str {
        str_at(&self.value, "/apiVersion")
    }

    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    pub fn name(&self) -> &str {
        str_at(&self.value, "/metadata/name")
    }

    pub fn declared_namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
    }

    /// True for a SOPS-encrypted document (it has a top-level `sops` block).
    pub fn is_encrypted(&self) -> bool {
        self.value.get("sops").is_some()
    }

    fn dir(&self) -> &str {
        self.file.rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[derive(Debug)]
pub enum RenderedError {
    Missing(PathBuf),
    Io(PathBuf, std::io::Error),
    Yaml(String, String),
}

impl fmt::Display for RenderedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderedError::Missing(path) => write!(
                f,
                "{}: no rendered `kubernetes/` directory here (run `cargo xtask configure` first)",
                path.display()
            ),
            RenderedError::Io(path, err) => write!(f, "{}: {err}", path.display()),
            RenderedError::Yaml(file, err) => write!(f, "{file}: not valid YAML: {err}"),
        }
    }
}

impl std::error::Error for RenderedError {}

/// A Flux Kustomization from an `ks.yaml` (or any file).
#[derive(Debug, Clone, PartialEq)]
pub struct FluxKustomization {
    pub name: String,
    pub namespace: String,
    /// `spec.path` without the leading `./`.
    pub path: String,
    pub target_namespace: Option<String>,
    /// `(namespace, name)`; a `dependsOn` without namespace means the Kustomization's own.
    pub depends_on: Vec<(String, String)>,
    pub file: String,
}

/// A Helm chart to install, as a HelmRelease and its OCIRepository describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct HelmChart {
    /// Release name: `spec.releaseName`, else the HelmRelease name (as helm-controller does).
    pub release: String,
    pub namespace: String,
    /// `oci://…` chart URL from the OCIRepository.
    pub url: String,
    pub version: String,
    pub values: Value,
    /// The HelmRelease file.
    pub file: String,
}

/// Every document of a rendered tree.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub docs: Vec<Document>,
}

impl Tree {
    /// Read every `*.yaml`/`*.yml` under `<root>/kubernetes`, sorted by path.
    pub fn load(root: &Path) -> Result<Tree, RenderedError> {
        let kubernetes = root.join("kubernetes");
        if !kubernetes.is_dir() {
            return Err(RenderedError::Missing(root.to_path_buf()));
        }
        let mut files = Vec::new();
        walk(&kubernetes, &mut files)?;
        files.sort();
        let mut docs = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|err| RenderedError::Io(path.clone(), err))?;
            let file = relative(root, &path);
            docs.extend(parse_documents(&file, &text)?);
        }
        Ok(Tree {
            root: root.to_path_buf(),
            docs,
        })
    }

    /// Build a tree from in-memory files (tests).
    pub fn from_files(files: &[(&str, &str)]) -> Result<Tree, RenderedError> {
        let mut docs = Vec::new();
        let mut sorted = files.to_vec();
        sorted.sort();
        for (file, text) in sorted {
            docs.extend(parse_documents(file, text)?);
        }
        Ok(Tree {
            root: PathBuf::new(),
            docs,
        })
    }

    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Document> + 'a {
        self.docs.iter().filter(move |doc| doc.kind() == kind)
    }

    /// Flux Kustomizations (`kustomize.toolkit.fluxcd.io`), with the namespace Flux gives them.
    pub fn kustomizations(&self) -> Vec<FluxKustomization> {
        self.docs
            .iter()
            .filter(|doc| {
                doc.kind() == "Kustomization" && doc.group() == "kustomize.toolkit.fluxcd.io"
            })
            .map(|doc| {
                let namespace = doc
                    .declared_namespace()
                    .map(str::to_owned)
                    .or_else(|| self.kustomize_namespace(doc.dir()))
                    .unwrap_or_else(|| "flux-system".to_owned());
                let depends_on = doc
                    .value
                    .pointer("/spec/dependsOn")
                    .and_then(Value::as_array)
                    .map(|deps| {
                        deps.iter()
                            .map(|dep| {
                                let ns = dep
                                    .get("namespace")
                                    .and_then(Value::as_str)
                                    .unwrap_or(&namespace);
                                (ns.to_owned(), str_at(dep, "/name").to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                FluxKustomization {
                    name: doc.name().to_owned(),
                    path: str_at(&doc.value, "/spec/path")
                        .trim_start_matches("./")
                        .trim_end_matches('/')
                        .to_owned(),
                    target_namespace: doc
                        .value
                        .pointer("/spec/targetNamespace")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    namespace,
                    depends_on,
                    file: doc.file.clone(),
                }
            })
            .collect()
    }

    /// The `namespace:` of the nearest enclosing kustomize `kustomization.yaml`, if any.
    fn kustomize_namespace(&self, dir: &str) -> Option<String> {
        let mut current = Some(dir);
        while let Some(dir) = current {
            let file = if dir.is_empty() {
                "kustomization.yaml".to_owned()
            } else {
                format!("{dir}/kustomization.yaml")
            };
            if let Some(doc) = self
                .docs
                .iter()
                .find(|doc| doc.file == file && doc.group() == "kustomize.config.k8s.io")
                && let Some(ns) = doc.value.get("namespace").and_then(Value::as_str)
            {
                return Some(ns.to_owned());
            }
            current = dir.rsplit_once('/').map(|(parent, _)| parent);
        }
        None
    }

    /// The Flux Kustomization that applies `doc`: the one with the longest `spec.path` that
    /// contains the document's directory.
    pub fn owner(&self, doc: &Document) -> Option<FluxKustomization> {
        let dir = doc.dir();
        self.kustomizations()
            .into_iter()
            .filter(|ks| {
                !ks.path.is_empty() && (dir == ks.path || dir.starts_with(&format!("{}/", ks.path)))
            })
            .max_by_key(|ks| ks.path.len())
    }

    /// The namespace an object ends up in: the owner's `targetNamespace`, else its own.
    pub fn effective_namespace(&self, doc: &Document) -> Option<String> {
        if let Some(target) = self.owner(doc).and_then(|ks| ks.target_namespace) {
            return Some(target);
        }
        doc.declared_namespace().map(str::to_owned)
    }

    /// Helm charts: each HelmRelease joined with the OCIRepository its `chartRef` names
    /// (same namespace; in the cluster-template layout, the same `app/` directory).
    pub fn helm_charts(&self) -> Result<Vec<HelmChart>, String> {
        let mut charts = Vec::new();
        for release in self.of_kind("HelmRelease") {
            let chart_ref = release.value.pointer("/spec/chartRef");
            let ref_kind = chart_ref.map_or("", |r| str_at(r, "/kind"));
            let ref_name = chart_ref.map_or("", |r| str_at(r, "/name"));
            if ref_kind != "OCIRepository" {
                return Err(format!(
                    "{}: HelmRelease `{}` has no `spec.chartRef` to an OCIRepository",
                    release.file,
                    release.name()
                ));
            }
            let namespace = self
                .effective_namespace(release)
                .unwrap_or_else(|| "default".to_owned());
            let repo = self
                .of_kind("OCIRepository")
                .filter(|repo| repo.name() == ref_name)
                .find(|repo| self.effective_namespace(repo).as_deref() == Some(namespace.as_str()))
                .ok_or_else(|| {
                    format!(
                        "{}: OCIRepository `{ref_name}` (namespace `{namespace}`) not found",
                        release.file
                    )
                })?;
            let url = str_at(&repo.value, "/spec/url");
            let version = str_at(&repo.value, "/spec/ref/tag");
            if url.is_empty() || version.is_empty() {
                return Err(format!(
                    "{}: OCIRepository `{ref_name}` needs `spec.url` and `spec.ref.tag`",
                    repo.file
                ));
            }
            let release_name = release
                .value
                .pointer("/spec/releaseName")
                .and_then(Value::as_str)
                .unwrap_or(release.name())
                .to_owned();
            charts.push(HelmChart {
                release: release_name,
                namespace: release
                    .value
                    .pointer("/spec/targetNamespace")
                    .and_then(Value::as_str)
                    .map_or(namespace, str::to_owned),
                url: url.to_owned(),
                version: version.to_owned(),
                values: release
                    .value
                    .pointer("/spec/values")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
                file: release.file.clone(),
            });
        }
        Ok(charts)
    }

    /// Kustomizations in dependency order (a Kustomization after everything it depends on);
    /// ties keep file order. A cycle or an unknown dependency is an error.
    pub fn kustomizations_in_order(&self) -> Result<Vec<FluxKustomization>, String> {
        let all = self.kustomizations();
        let key = |ks: &FluxKustomization| (ks.namespace.clone(), ks.name.clone());
        let index: BTreeMap<(String, String), usize> =
            all.iter().enumerate().map(|(i, ks)| (key(ks), i)).collect();
        for ks in &all {
            for dep in &ks.depends_on {
                if !index.contains_key(dep) {
                    return Err(format!(
                        "{}: Kustomization `{}/{}` depends on `{}/{}`, which is not rendered",
                        ks.file, ks.namespace, ks.name, dep.0, dep.1
                    ));
                }
            }
        }
        let mut done = vec![false; all.len()];
        let mut order = Vec::new();
        while order.len() < all.len() {
            let next = (0..all.len())
                .find(|&i| !done[i] && all[i].depends_on.iter().all(|dep| done[index[dep]]));
            match next {
                Some(i) => {
                    done[i] = true;
                    order.push(all[i].clone());
                }
                None => {
                    let stuck: Vec<String> = (0..all.len())
                        .filter(|&i| !done[i])
                        .map(|i| format!("{}/{}", all[i].namespace, all[i].name))
                        .collect();
                    return Err(format!(
                        "dependsOn cycle among Kustomizations: {}",
                        stuck.join(", ")
                    ));
                }
            }
        }
        Ok(order)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RenderedError> {
    let entries =
        std::fs::read_dir(dir).map_err(|err| RenderedError::Io(dir.to_path_buf(), err))?;
    for entry in entries {
        let entry = entry.map_err(|err| RenderedError::Io(dir.to_path_buf(), err))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|err| RenderedError::Io(path.clone(), err))?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            out.push(path);
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Parse a multi-document YAML file; empty documents are dropped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, RenderedError> {
    let values: Vec<Value> = serde_saphyr::from_multiple(text)
        .map_err(|err| RenderedError::Yaml(file.to_owned(), err.to_string()))?;
    Ok(values
        .into_iter()
        .filter(|value| !value.is_null())
        .enumerate()
        .map(|(index, value)| Document {
            file: file.to_owned(),
            index,
            value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS_KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: network
resources: [./namespace.yaml, ./eg/ks.yaml]
";
    const KS: &str = "\
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: eg
spec:
  path: ./kubernetes/apps/network/eg/app
  targetNamespace: network
  dependsOn:
    - name: crds
      namespace: flux-system
";
    const CRDS: &str = "\
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: crds
  namespace: flux-system
spec:
  path: ./kubernetes/crds
";

    fn tree(extra: &[(&str, &str)]) -> Tree {
        let mut files = vec![
            (
                "kubernetes/apps/network/kustomization.yaml",
                NS_KUSTOMIZATION,
            ),
            ("kubernetes/apps/network/eg/ks.yaml", KS),
            ("kubernetes/flux/crds.yaml", CRDS),
        ];
        files.extend_from_slice(extra);
        Tree::from_files(&files).unwrap()
    }

    #[test]
    fn kustomization_namespaces_and_order() {
        let tree = tree(&[]);
        let order = tree.kustomizations_in_order().unwrap();
        let names: Vec<String> = order
            .iter()
            .map(|ks| format!("{}/{}", ks.namespace, ks.name))
            .collect();
        assert_eq!(names, vec!["flux-system/crds", "network/eg"]);
        assert_eq!(order[1].path, "kubernetes/apps/network/eg/app");
    }

    #[test]
    fn unknown_dependency_and_cycle_are_errors() {
        let broken = KS.replace("name: crds", "name: nope");
        let tree = Tree::from_files(&[("kubernetes/apps/network/eg/ks.yaml", &broken)]).unwrap();
        assert!(
            tree.kustomizations_in_order()
                .unwrap_err()
                .contains("flux-system/nope")
        );
        let cyclic = CRDS.replace(
            "spec:\n",
            "spec:\n  dependsOn: [{name: eg, namespace: network}]\n",
        );
        let tree = Tree::from_files(&[
            (
                "kubernetes/apps/network/kustomization.yaml",
                NS_KUSTOMIZATION,
            ),
            ("kubernetes/apps/network/eg/ks.yaml", KS),
            ("kubernetes/flux/crds.yaml", &cyclic),
        ])
        .unwrap();
        assert!(
            tree.kustomizations_in_order()
                .unwrap_err()
                .contains("cycle")
        );
    }

    #[test]
    fn helm_chart_joins_release_and_repository() {
        let release = "\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata: {name: eg}
spec:
  chartRef: {kind: OCIRepository, name: eg}
  values:
    config: {envoyGateway: {extensionApis: {enableBackend: true}}}
";
        let repo = "\
apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: eg}
spec:
  url: oci://mirror.gcr.io/envoyproxy/gateway-helm
  ref: {tag: v1.6.7}
";
        let tree = tree(&[
            ("kubernetes/apps/network/eg/app/helmrelease.yaml", release),
            ("kubernetes/apps/network/eg/app/ocirepository.yaml", repo),
        ]);
        let charts = tree.helm_charts().unwrap();
        assert_eq!(charts.len(), 1);
        assert_eq!(
            (
                charts[0].release.as_str(),
                charts[0].namespace.as_str(),
                charts[0].url.as_str(),
                charts[0].version.as_str()
            ),
            (
                "eg",
                "network",
                "oci://mirror.gcr.io/envoyproxy/gateway-helm",
                "v1.6.7"
            )
        );
        assert_eq!(
            charts[0]
                .values
                .pointer("/config/envoyGateway/extensionApis/enableBackend"),
            Some(&Value::Bool(true))
        );

        let tree = tree_without_repo(release);
        assert!(
            tree.helm_charts()
                .unwrap_err()
                .contains("OCIRepository `eg`")
        );
    }

    fn tree_without_repo(release: &str) -> Tree {
        tree(&[("kubernetes/apps/network/eg/app/helmrelease.yaml", release)])
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let err = Tree::from_files(&[("kubernetes/x.yaml", "a: [unclosed")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("kubernetes/x.yaml: not valid YAML"),
            "{err}"
        );
    }
}
