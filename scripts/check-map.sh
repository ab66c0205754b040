#!/usr/bin/env bash
# The README's map (between <!-- map --> and <!-- /map -->) names exactly the
# repository's top-level files and folders: each line's first word, folders
# with a trailing slash, against `git ls-files`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

mapped=$(sed -n '/^<!-- map -->$/,/^<!-- \/map -->$/p' README.md \
  | grep -v -e '^<!--' -e '^```' -e '^ ' | awk 'NF {print $1}' | sort)
[ -n "$mapped" ] || fail "README.md has no map between <!-- map --> and <!-- /map -->"
tracked=$(git ls-files | awk -F/ '{print (NF > 1 ? $1 "/" : $1)}' | sort -u)

missing=$(comm -13 <(echo "$mapped") <(echo "$tracked"))
stale=$(comm -23 <(echo "$mapped") <(echo "$tracked"))
[ -z "$missing" ] || fail "README.md's map lacks: $(echo $missing)"
[ -z "$stale" ] || fail "README.md's map names what the repository does not have: $(echo $stale)"
say "README map: $(echo "$tracked" | wc -l) top-level entries, all named"
