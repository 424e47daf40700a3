#!/bin/sh
# Lambda may run this image as a uid with no /etc/passwd entry, and ssh
# refuses to start without one. /etc/passwd links to /tmp/passwd (the one
# writable place): write the image's users plus ours, then start the worker.
uid="$(id -u)"
gid="$(id -g)"
{
  cat /etc/passwd.image
  grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd.image || echo "lambda:x:$uid:$gid:Lambda worker:/tmp:/sbin/nologin"
} >/tmp/passwd
exec "${LAMBDA_RUNTIME_DIR:-/var/runtime}/worker" "$@"
