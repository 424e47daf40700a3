#!/bin/bash
# Prepares a Debian or Ubuntu server as an mPanel hosting server:
#   sudo ./install.sh [--user mpanel] [--web-root /srv/www]
# Installs nginx-light, the SFTP setup and the one privileged command
# (mpanel-site), and lets the hosting user run exactly that command
# through sudo. Safe to run again (upgrades the shipped files).
set -euo pipefail
HOSTING_USER=mpanel
WEB_ROOT=/srv/www
HTTP_LISTEN=80
HTTPS_LISTEN=443
HTTPS_PORT=443
NGINX_CONF=/etc/nginx/nginx.conf
NGINX_PID=/run/nginx.pid
NGINX_SITES=/etc/nginx/mpanel-sites
SSHD_DROP_IN=/etc/ssh/sshd_config.d/mpanel-sftp.conf
NGINX_DROP_IN=/etc/nginx/conf.d/mpanel.conf
while [ $# -gt 0 ]; do
    case $1 in
    --user) HOSTING_USER=$2; shift 2 ;;
    --web-root) WEB_ROOT=$2; shift 2 ;;
    --http-listen) HTTP_LISTEN=$2; shift 2 ;;
    --https-listen) HTTPS_LISTEN=$2; shift 2 ;;
    --https-port) HTTPS_PORT=$2; shift 2 ;;
    --nginx-conf) NGINX_CONF=$2; shift 2 ;;
    --nginx-pid) NGINX_PID=$2; shift 2 ;;
    --nginx-sites) NGINX_SITES=$2; shift 2 ;;
    --sshd-drop-in) SSHD_DROP_IN=$2; shift 2 ;;
    --nginx-drop-in) NGINX_DROP_IN=$2; shift 2 ;;
    --no-packages) NO_PACKAGES=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[[ $WEB_ROOT =~ ^/[A-Za-z0-9._/-]+$ && $WEB_ROOT != *..* ]] || { echo "bad --web-root" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${NO_PACKAGES:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        nginx-light openssh-server sudo
fi

getent group mpanel-sftp >/dev/null || groupadd --system mpanel-sftp
id "$HOSTING_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$HOSTING_USER"

# The web root and every directory above it must be root's: sshd chroots
# each site login into its site.
install -d -o root -g root -m 0755 "$WEB_ROOT" "$WEB_ROOT/.mpanel" "$NGINX_SITES" /etc/ssh/mpanel-keys /etc/mpanel
install -o root -g root -m 0755 "$here/bin/mpanel-site" /usr/local/sbin/mpanel-site
cat >/etc/mpanel/hosting.conf <<CONF
# Read by /usr/local/sbin/mpanel-site (written by install.sh).
WEB_ROOT=$WEB_ROOT
HTTP_LISTEN=$HTTP_LISTEN
HTTPS_LISTEN=$HTTPS_LISTEN
HTTPS_PORT=$HTTPS_PORT
NGINX_CONF=$NGINX_CONF
NGINX_PID=$NGINX_PID
NGINX_SITES=$NGINX_SITES
WEB_GROUP=www-data
SFTP_GROUP=mpanel-sftp
SFTP_KEYS=/etc/ssh/mpanel-keys
CONF
chmod 0644 /etc/mpanel/hosting.conf

# Exactly one command, any arguments: it checks them itself.
cat >/etc/sudoers.d/mpanel <<SUDO
$HOSTING_USER ALL=(root) NOPASSWD: /usr/local/sbin/mpanel-site
SUDO
chmod 0440 /etc/sudoers.d/mpanel
visudo -cq -f /etc/sudoers.d/mpanel

if [ -n "$SSHD_DROP_IN" ]; then
    install -o root -g root -m 0644 "$here/ssh/mpanel-sftp.conf" "$SSHD_DROP_IN"
fi
if [ -n "$NGINX_DROP_IN" ]; then
    sed "s|/etc/nginx/mpanel-sites|$NGINX_SITES|; s|listen 80 default_server;|listen $HTTP_LISTEN default_server;|; s|listen 443 ssl default_server;|listen $HTTPS_LISTEN ssl default_server;|" \
        "$here/nginx/mpanel.conf" >"$NGINX_DROP_IN"
    rm -f /etc/nginx/sites-enabled/default
    nginx -t && { systemctl reload nginx 2>/dev/null || nginx -s reload; }
fi
if [ -n "$SSHD_DROP_IN" ]; then
    sshd -t && { systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true; }
fi
echo "mPanel hosting setup installed: web root $WEB_ROOT, hosting user $HOSTING_USER."
echo "Add the tenant's key (GET /api/ssh-key) to ~$HOSTING_USER/.ssh/authorized_keys."
