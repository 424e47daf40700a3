#!/bin/sh
# The Lambda base images' entrypoint contract: the handler is the one
# argument; under Lambda (or the emulator SAM starts, which sets
# AWS_LAMBDA_RUNTIME_API) the runtime's bootstrap is executed.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

if [ -x "${LAMBDA_RUNTIME_DIR:-/var/runtime}/bootstrap" ]; then
  RUNTIME_ENTRYPOINT="${LAMBDA_RUNTIME_DIR:-/var/runtime}/bootstrap"
else
  RUNTIME_ENTRYPOINT="${LAMBDA_TASK_ROOT:-/var/task}/bootstrap"
fi
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  echo "AWS_LAMBDA_RUNTIME_API is not set: run this image under Lambda or the Runtime Interface Emulator" 1>&2
  exit 142
fi
exec "$RUNTIME_ENTRYPOINT"
