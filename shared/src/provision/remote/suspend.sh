# $4: where to hold the live public/ (under .mpanel/held, recorded in our
# database before this runs). The suspended page arrives on stdin.
held=$4
if ! ours; then
    if present "$site"; then not_ours; fi
    exit 0
fi
if ! present "$held"; then
    mkdir -p -- "$state/held"
    if present "$site/public"; then mv -T -- "$site/public" "$held"; else mkdir -- "$held"; fi
fi
mkdir -p -- "$site/public"
cat > "$site/public/index.html"
