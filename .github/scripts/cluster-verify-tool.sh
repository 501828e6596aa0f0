#!/usr/bin/env bash
# Finds the workspace that provides `cargo xtask verify` for .github/workflows/cluster-verify.yaml
# and writes `dir=<path>` to $GITHUB_OUTPUT (`dir=` when there is nothing to verify yet).
#
# - Not configured yet (no .render-manifest.json): nothing to verify; says so and succeeds.
# - Before `cargo xtask tidy`: the repository itself.
# - After `tidy`: the repository itself too (tidy keeps the Rust workspace since issue 14).
# - After a `tidy` of a release that moved the Rust workspace to the git-ignored .private/: the workspace as it
#   was in the commit before the one that removed it, extracted with `git archive` into
#   $RUNNER_TEMP. It is the version that rendered the tree, so it checks it by the same rules.
#   Needs the full history (actions/checkout with fetch-depth: 0).
set -euo pipefail

out="${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set}"
workspace=(Cargo.toml Cargo.lock rust-toolchain.toml .cargo crates xtask e2e)

if [ ! -f .render-manifest.json ]; then
  echo "::notice::no .render-manifest.json: this repository is not configured yet, so there is nothing to verify (run \`cargo xtask configure\` and commit the result)"
  echo "dir=" >> "$out"
  exit 0
fi

if [ -f xtask/Cargo.toml ] && [ -f Cargo.toml ]; then
  echo "verify tool: this repository's workspace"
  echo "dir=$PWD" >> "$out"
  exit 0
fi

removed="$(git log -1 --format=%H --diff-filter=D -- xtask/Cargo.toml)"
if [ -z "$removed" ]; then
  echo "::error::the Rust workspace (xtask/) is neither here nor in this branch's history, so \`cargo xtask verify\` cannot run; help: commit the template's workspace once before \`cargo xtask tidy\`, or move .private/tidy-<time>/* back"
  exit 1
fi
dir="${RUNNER_TEMP:?RUNNER_TEMP is not set}/cluster-verify-tool"
rm -rf "$dir"
mkdir -p "$dir"
# tools.toml is compiled into xtask since it exists (a release before it has none).
if git cat-file -e "$removed^:tools.toml" 2>/dev/null; then
  workspace+=(tools.toml)
fi
git archive --format=tar "$removed^" -- "${workspace[@]}" | tar -x -C "$dir"
echo "verify tool: the workspace of $(git rev-parse --short "$removed^"), before \`tidy\` removed it in $(git rev-parse --short "$removed")"
echo "dir=$dir" >> "$out"
