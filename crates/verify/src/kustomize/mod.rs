//! An in-process subset of `kustomize build` — enough to know which objects each directory
//! produces, with which namespace, and from which file and line.
//!
//! Modelled: `resources` (files and directories), `components`, `namespace`, `patches`,
//! `patchesStrategicMerge`, `patchesJson6902`, `commonLabels`, `labels`, `commonAnnotations`,
//! `namePrefix`/`nameSuffix`, and Flux's generated kustomization for a path without one
//! (every sub-directory holding a kustomization file is a resource and is not descended into;
//! every other `*.yaml`/`*.yml` file is a resource). Strategic-merge patches merge maps and
//! merge lists of named items by `name`; other lists are replaced. Generators, Helm charts,
//! replacements and remote bases are not modelled and are reported as such.
//!
//! `kubectl kustomize` is the independent oracle for this module in the tests.

mod build;
mod flux;
mod object;
mod patch;
mod resolve;
mod scopes;
mod selector;
mod spec;
mod transform;

pub(crate) use build::{Built, Kustomizer};
pub(crate) use flux::FluxOverrides;
pub(crate) use object::Obj;
pub(crate) use scopes::Scopes;
pub(crate) use spec::KUSTOMIZATION_FILES;
