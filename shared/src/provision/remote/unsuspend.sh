# $4: the held public/ to restore; $5: where anything that appeared in the
# suspended public/ is kept. The suspended page arrives on stdin: only a
# file identical to it is deleted.
held=$4 aside=$5
if ! ours; then
    if present "$site"; then not_ours; fi
    exit 0
fi
present "$held" || exit 0
public=$site/public
if present "$public"; then
    page=$public/index.html
    if [ -f "$page" ] && [ ! -L "$page" ] && cmp -s - "$page"; then rm -f -- "$page"; fi
    rmdir -- "$public" 2>/dev/null || mv -T -- "$public" "$aside"
fi
mv -T -- "$held" "$public"
