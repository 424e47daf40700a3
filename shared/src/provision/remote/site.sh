# Shared prologue of every site script: $1 web root, $2 domain, $3 hosting
# account id. A site is ours when <webRoot>/.mpanel/sites/<domain> (outside
# the customer's reach) names our account. Exit 3: it exists and is not ours.
set -eu
web_root=$1 domain=$2 account=$3
state=$web_root/.mpanel
site=$web_root/$domain
owner=$state/sites/$domain
ours() { [ -f "$owner" ] && [ ! -L "$owner" ] && [ "$(cat -- "$owner")" = "$account" ]; }
present() { [ -e "$1" ] || [ -L "$1" ]; }
not_ours() { echo "the site directory exists and is not ours; nothing was changed" >&2; exit 3; }
