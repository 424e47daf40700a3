#!/bin/bash
# Prepares a Debian or Ubuntu server as an mPanel mail server:
#   sudo ./install.sh --pg-host db.internal --pg-password ... [options]
# Installs Dovecot (IMAP, LMTP, quota), Postfix (with PostgreSQL maps) and
# OpenDKIM; writes their configuration into --config-dir from the files
# beside this script; installs the one privileged command (mpanel-mail) and
# lets the hosting user run exactly that through sudo. Safe to run again.
# Then start: dovecot -c DIR/dovecot.conf; postfix -c DIR/postfix start;
# opendkim -x DIR/opendkim.conf (or point the services' units at them).
set -euo pipefail
HOSTING_USER=mpanel
CONFIG_DIR=/etc/mpanel/mail
RUN_DIR=/run/mpanel-mail
STATE_DIR=/var/lib/mpanel-mail
LOG_DIR=/var/log/mpanel-mail
LISTEN=0.0.0.0
HOSTNAME_=$(hostname -f 2>/dev/null || hostname)
SMTP_PORT=25 IMAP_PORT=143 LMTP_PORT=24 QUOTA_STATUS_PORT=12340 DKIM_PORT=8891
SSL=required DISABLE_PLAINTEXT_AUTH=yes
PG_HOST=127.0.0.1 PG_PORT=5432 PG_DBNAME=mpanel PG_USER=mpanel_mail PG_PASSWORD=
while [ $# -gt 0 ]; do
    case $1 in
    --user) HOSTING_USER=$2; shift 2 ;;
    --config-dir) CONFIG_DIR=$2; shift 2 ;;
    --run-dir) RUN_DIR=$2; shift 2 ;;
    --state-dir) STATE_DIR=$2; shift 2 ;;
    --log-dir) LOG_DIR=$2; shift 2 ;;
    --listen) LISTEN=$2; shift 2 ;;
    --hostname) HOSTNAME_=$2; shift 2 ;;
    --smtp-port) SMTP_PORT=$2; shift 2 ;;
    --imap-port) IMAP_PORT=$2; shift 2 ;;
    --lmtp-port) LMTP_PORT=$2; shift 2 ;;
    --quota-status-port) QUOTA_STATUS_PORT=$2; shift 2 ;;
    --dkim-port) DKIM_PORT=$2; shift 2 ;;
    # Loopback-only test setups: no TLS, plain passwords allowed.
    --insecure-loopback) SSL=no DISABLE_PLAINTEXT_AUTH=no; shift ;;
    --pg-host) PG_HOST=$2; shift 2 ;;
    --pg-port) PG_PORT=$2; shift 2 ;;
    --pg-dbname) PG_DBNAME=$2; shift 2 ;;
    --pg-user) PG_USER=$2; shift 2 ;;
    --pg-password) PG_PASSWORD=$2; shift 2 ;;
    --no-packages) NO_PACKAGES=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for value in "$CONFIG_DIR" "$RUN_DIR" "$STATE_DIR" "$LOG_DIR"; do
    [[ $value =~ ^/[A-Za-z0-9._/-]+$ && $value != *..* ]] || { echo "bad path $value" >&2; exit 2; }
done
[[ $PG_PASSWORD != *[\|\'\ ]* ]] || { echo "--pg-password may not hold |, ' or spaces" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

if [ -z "${NO_PACKAGES:-}" ]; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        dovecot-imapd dovecot-lmtpd dovecot-pgsql postfix-pgsql opendkim opendkim-tools sudo
fi

getent group vmail >/dev/null || groupadd --system vmail
id vmail >/dev/null 2>&1 || useradd --system --gid vmail --home-dir /var/vmail --shell /usr/sbin/nologin vmail
id "$HOSTING_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$HOSTING_USER"
# mPanel's views name homes under /var/vmail.
install -d -o vmail -g vmail -m 0750 /var/vmail
install -d -o root -g root -m 0755 "$CONFIG_DIR" "$CONFIG_DIR/postfix" "$RUN_DIR" "$STATE_DIR" "$LOG_DIR" /etc/mpanel
install -d -o root -g root -m 0755 "$STATE_DIR/dkim" "$STATE_DIR/postfix-queue"
install -d -o postfix -g postfix -m 0700 "$STATE_DIR/postfix-data"
touch "$STATE_DIR/dkim/KeyTable" "$STATE_DIR/dkim/SigningTable"
install -d -o opendkim -g opendkim -m 0755 "$RUN_DIR/opendkim"

render() { # template, destination, mode
    sed -e "s|@CONFIG_DIR@|$CONFIG_DIR|g; s|@RUN_DIR@|$RUN_DIR|g; s|@STATE_DIR@|$STATE_DIR|g" \
        -e "s|@LOG_DIR@|$LOG_DIR|g; s|@LISTEN@|$LISTEN|g; s|@HOSTNAME@|$HOSTNAME_|g" \
        -e "s|@SMTP_PORT@|$SMTP_PORT|g; s|@IMAP_PORT@|$IMAP_PORT|g; s|@LMTP_PORT@|$LMTP_PORT|g" \
        -e "s|@QUOTA_STATUS_PORT@|$QUOTA_STATUS_PORT|g; s|@DKIM_PORT@|$DKIM_PORT|g; s|@DKIM_DIR@|$STATE_DIR/dkim|g" \
        -e "s|@SSL@|$SSL|g; s|@DISABLE_PLAINTEXT_AUTH@|$DISABLE_PLAINTEXT_AUTH|g" \
        -e "s|@PG_HOST@|$PG_HOST|g; s|@PG_PORT@|$PG_PORT|g; s|@PG_DBNAME@|$PG_DBNAME|g" \
        -e "s|@PG_USER@|$PG_USER|g; s|@PG_PASSWORD@|$PG_PASSWORD|g" \
        -e "s|@PG_CONNECT@|host=$PG_HOST port=$PG_PORT dbname=$PG_DBNAME user=$PG_USER password=$PG_PASSWORD|g" \
        "$1" >"$2.tmp"
    chmod "$3" "$2.tmp"
    mv -f "$2.tmp" "$2"
}
render "$here/dovecot.conf" "$CONFIG_DIR/dovecot.conf" 0644
render "$here/dovecot-sql.conf.ext" "$CONFIG_DIR/dovecot-sql.conf.ext" 0600
render "$here/opendkim.conf" "$CONFIG_DIR/opendkim.conf" 0644
for f in main.cf master.cf; do render "$here/postfix/$f" "$CONFIG_DIR/postfix/$f" 0644; done
for f in "$here"/postfix/pgsql-*.cf; do render "$f" "$CONFIG_DIR/postfix/$(basename "$f")" 0640; done
chgrp postfix "$CONFIG_DIR"/postfix/pgsql-*.cf

install -o root -g root -m 0755 "$here/bin/mpanel-mail" /usr/local/sbin/mpanel-mail
cat >/etc/mpanel/mail.conf <<CONF
# Read by /usr/local/sbin/mpanel-mail (written by mailserver/install.sh).
VMAIL_DIR=/var/vmail
DKIM_DIR=$STATE_DIR/dkim
OPENDKIM_PID=$RUN_DIR/opendkim/opendkim.pid
CONF
chmod 0644 /etc/mpanel/mail.conf
cat >/etc/sudoers.d/mpanel-mail <<SUDO
$HOSTING_USER ALL=(root) NOPASSWD: /usr/local/sbin/mpanel-mail
SUDO
chmod 0440 /etc/sudoers.d/mpanel-mail
visudo -cq -f /etc/sudoers.d/mpanel-mail
echo "mPanel mail server setup written to $CONFIG_DIR (hosting user $HOSTING_USER)."
