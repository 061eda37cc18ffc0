#!/usr/bin/env bash
# Lists the match arms (and registry lines) that name a model family or a tokenization scheme
# outside the families' own files, in non-test code: a grep heuristic over `pattern =>` lines.
# Since 2026-12-08 only the two registries' lines are left (scfm::family, scfm_tokenize::spec).
#
#   scripts/check/family_arms.sh        # prints the lines; `| wc -l` counts them
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files 'crates/*.rs' | grep -v -E '/(geneformer|scgpt|scbert|xtrimogene|genecompass)(/|\.rs)' | grep -v '/tests/' | grep -v '/benches/' | grep -v '/examples/')
for f in $files; do
  # drop #[cfg(test)] mod tests ... (to end of file)
  awk '/^#\[cfg\(test\)\]/{exit} {print FILENAME":"FNR":"$0}' "$f"
done | grep -E '=>' | awk -F'=>' '{print $1}' | grep -i -E '(geneformer|scgpt|sc_gpt|scbert|sc_bert|xtrimogene|scfoundation|genecompass)' 
