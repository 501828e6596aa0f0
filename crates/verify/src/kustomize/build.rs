//! The build state: the `Kustomizer`, its cache and stack of directories, and the object budget
//! and duplicate-id check every added object goes through.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use schema::{Diagnostic, Location};

use super::object::{Obj, ResId};
use super::scopes::Scopes;
use super::spec::Spec;
use crate::tree::Tree;

/// The objects of one build in order, with the position of the first object of each id (what
/// kustomize's resource map refuses a second time).
#[derive(Default)]
pub(super) struct Building {
    pub(super) objects: Vec<Obj>,
    first: HashMap<ResId, usize>,
}

impl Building {
    /// Re-reads every id after a transformation may have changed namespaces or names.
    pub(super) fn reindex(&mut self) {
        self.first.clear();
        for (i, o) in self.objects.iter().enumerate() {
            self.first.entry(o.res_id()).or_insert(i);
        }
    }
}

/// What one build produced.
#[derive(Clone, Debug, Default)]
pub(crate) struct Built {
    pub(crate) objects: Vec<Obj>,
}

pub(crate) struct Kustomizer<'t> {
    pub(crate) tree: &'t mut Tree,
    pub(crate) scopes: &'t Scopes,
    cache: HashMap<PathBuf, Option<Rc<Built>>>,
    pub(super) stack: Vec<PathBuf>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Files read as resources, patches or kustomization files by any build.
    pub(crate) consumed: BTreeSet<PathBuf>,
    /// Directories whose build failed (the reason is among the diagnostics): what they would
    /// have applied is unknown.
    pub(crate) failed: BTreeSet<PathBuf>,
    /// Objects added to builds so far, against [`MAX_BUILT_OBJECTS`].
    built: usize,
    /// Set once the budget is spent (reported once); every build fails from then on.
    pub(super) exhausted: bool,
}

/// Objects all kustomize builds of one verify run may produce together. Kustomizations that
/// list each other as resources multiply: ten directories each including the next level ten
/// times make 10^8 objects from 80 small files. The 1,000-deployment benchmark tree builds a
/// few thousand.
pub(crate) const MAX_BUILT_OBJECTS: usize = 200_000;

impl<'t> Kustomizer<'t> {
    pub(crate) fn new(tree: &'t mut Tree, scopes: &'t Scopes) -> Kustomizer<'t> {
        Kustomizer {
            tree,
            scopes,
            cache: HashMap::new(),
            stack: Vec::new(),
            diagnostics: Vec::new(),
            consumed: BTreeSet::new(),
            failed: BTreeSet::new(),
            built: 0,
            exhausted: false,
        }
    }

    /// `kustomize build <dir>` for a directory holding a kustomization file. `None` if the
    /// build fails (the reasons are in `diagnostics`).
    pub(crate) fn build_dir(&mut self, dir: &Path) -> Option<Rc<Built>> {
        if let Some(done) = self.cache.get(dir) {
            return done.clone();
        }
        if self.stack.iter().any(|d| d == dir) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&dir.to_path_buf()))
                .map(|p| p.display().to_string())
                .collect();
            self.diagnostics.push(Diagnostic::error(
                "verify::kustomize_cycle",
                "",
                format!("kustomizations include each other: {}", chain.join(" -> ")),
            ));
            return None;
        }
        let spec = self.read_spec(dir, false)?;
        self.stack.push(dir.to_path_buf());
        let built = self.build_spec(&spec, None).map(Rc::new);
        self.stack.pop();
        if built.is_none() {
            self.failed.insert(dir.to_path_buf());
        }
        self.cache.insert(dir.to_path_buf(), built.clone());
        built
    }

    /// Adds an object, refusing a second object with the same id (like kustomize).
    pub(super) fn add(
        &mut self,
        out: &mut Building,
        obj: Obj,
        spec: &Spec,
        at: Option<Location>,
    ) -> bool {
        self.built += 1;
        if self.built > MAX_BUILT_OBJECTS {
            if !self.exhausted {
                self.exhausted = true;
                self.diagnostics.push(
                    Diagnostic::error(
                        "verify::kustomize_too_large",
                        "",
                        format!(
                            "the kustomize builds produce more than {MAX_BUILT_OBJECTS} objects; building stopped at {}",
                            obj.file.display()
                        ),
                    )
                    .at(at)
                    .with_help("kustomizations that include each other many times multiply their objects; a rendered tree builds a few thousand"),
                );
            }
            return false;
        }
        let new_id = obj.res_id();
        if let Some(prev) = out.first.get(&new_id).map(|&i| &out.objects[i]) {
            let where_ = spec.file.as_ref().map_or_else(
                || spec.dir.display().to_string(),
                |f| f.display().to_string(),
            );
            self.diagnostics.push(
                Diagnostic::error(
                    "verify::kustomize_duplicate",
                    "",
                    format!(
                        "{} is added twice to the build of {where_}; kustomize refuses an already registered id",
                        obj.display()
                    ),
                )
                .at(at)
                .with_note(
                    format!("first added from {}", prev.file.display()),
                    None,
                )
                .with_help("list each file once across `resources` and components"),
            );
            return false;
        }
        out.first.insert(new_id, out.objects.len());
        out.objects.push(obj);
        true
    }
}
