# $4: "adopt" for a site our database recorded before markers existed.
# The default page arrives on stdin and is written only if absent.
if ! ours; then
    if present "$owner"; then not_ours; fi
    if present "$site" && [ "${4-}" != adopt ]; then not_ours; fi
    mkdir -p -- "$state/sites"
    (set -C; printf '%s\n' "$account" > "$owner")
fi
mkdir -p -- "$site/public" "$site/logs" "$site/private"
chmod 0750 -- "$site/private"
index=$site/public/index.html
if ! present "$index"; then
    # noclobber: if another attempt wrote it meanwhile, keep that one.
    (set -C; cat > "$index") 2>/dev/null || present "$index"
fi
