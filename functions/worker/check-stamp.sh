#!/bin/sh
# check-stamp.sh <binary dir> <git dir>: fails unless <binary dir>/bootstrap
# is the one ./scripts/worker-binary built from the commit checked out here.
set -eu
bin="$1/bootstrap"
stamp="$1/stamp"
git="$2"
fail() { echo "worker image: $*" >&2; exit 1; }

[ -f "$bin" ] && [ -f "$stamp" ] || fail "no build/worker/bootstrap with its stamp: run ./scripts/worker-binary first"
head="$(cat "$git/HEAD")"
case "$head" in
  "ref: "*)
    ref="${head#ref: }"
    if [ -f "$git/$ref" ]; then
      head="$(cat "$git/$ref")"
    else
      head="$(grep " $ref\$" "$git/packed-refs" 2>/dev/null | cut -d' ' -f1 || true)"
    fi
    ;;
esac
[ -n "$head" ] || fail "cannot read the commit checked out (.git/HEAD)"
commit="$(sed -n 's/^commit=//p' "$stamp")"
sum="$(sed -n 's/^sha256=//p' "$stamp")"
[ "$commit" = "$head" ] || fail "build/worker/bootstrap was built from ${commit:-an unknown tree}, not from HEAD ($head): run ./scripts/worker-binary again"
echo "$sum  $bin" | sha256sum -c - >/dev/null 2>&1 || fail "build/worker/bootstrap is not the binary its stamp names: run ./scripts/worker-binary again"
echo "worker image: binary of $commit ($(sed -n 's/^arch=//p' "$stamp"))"
