# $4: the archive's file name (unique to the job), $5: the attempt number.
# Under a lock per site, so a cut-off attempt whose tar still runs and the
# next attempt never overlap (exit 75: try again later). The site is removed
# only after its archive passed gzip -t and lists every entry of the site.
archive_dir=$web_root/.terminated
archive=$archive_dir/$4
partial=$archive.$5.partial
if ! ours; then
    # Never ours, or not any more: left exactly as it is.
    if present "$site"; then echo not-ours; fi
    exit 0
fi
mkdir -p -- "$state/locks" "$archive_dir"
exec 9>"$state/locks/$domain.lock"
flock -n 9 || { echo "an earlier attempt is still working on this site" >&2; exit 75; }
verified() {
    gzip -t -- "$1" || return 1
    listed=$(tar -tzf "$1" | wc -l)
    present_now=$(find "$site" | wc -l)
    [ "$listed" -gt 0 ] && [ "$listed" -eq "$present_now" ]
}
if [ -d "$site" ]; then
    if ! [ -f "$archive" ]; then
        rm -f -- "$partial"
        tar -czf "$partial" -C "$web_root" -- "$domain"
        verified "$partial" || { echo "the archive did not verify" >&2; exit 75; }
        mv -T -- "$partial" "$archive"
    elif ! verified "$archive"; then
        # Ours (the name is this job's), but the site changed since: redo it.
        rm -f -- "$archive"
        echo "the site changed while it was archived" >&2
        exit 75
    fi
    rm -rf -- "$site"
fi
rm -f -- "$archive".*.partial
rm -f -- "$owner"
if [ -f "$archive" ]; then printf '%s\n' "$archive"; fi
