#!/usr/bin/env bash
# The README's map (between <!-- map --> and <!-- /map -->) names exactly the
# repository's top-level files and folders: each line's first word, folders
# with a trailing slash, against `git ls-files`. Then the docs' links and
# panic-strategy statements (scripts/check-docs.py), after its self-test.
#
#   scripts/check-map.sh              the self-test, then every check
#   scripts/check-map.sh --self-test  only the docs check's self-test
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
need_python

python3 scripts/check-docs.py --self-test || fail "the docs check's self-test failed: it cannot be trusted"
case "${1:-}" in
  --self-test) exit 0 ;;
  "") ;;
  *) fail "unknown argument $1 (try --self-test)" ;;
esac

mapped=$(sed -n '/^<!-- map -->$/,/^<!-- \/map -->$/p' README.md \
  | grep -v -e '^<!--' -e '^```' -e '^ ' | awk 'NF {print $1}' | sort)
[ -n "$mapped" ] || fail "README.md has no map between <!-- map --> and <!-- /map -->"
tracked=$(git ls-files | awk -F/ '{print (NF > 1 ? $1 "/" : $1)}' | sort -u)

missing=$(comm -13 <(echo "$mapped") <(echo "$tracked"))
stale=$(comm -23 <(echo "$mapped") <(echo "$tracked"))
[ -z "$missing" ] || fail "README.md's map lacks: $(echo $missing)"
[ -z "$stale" ] || fail "README.md's map names what the repository does not have: $(echo $stale)"
say "README map: $(echo "$tracked" | wc -l) top-level entries, all named"

python3 scripts/check-docs.py || fail "the docs fail the checks above: fix them, or see scripts/check-docs.py"
