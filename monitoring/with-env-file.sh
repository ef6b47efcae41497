#!/usr/bin/env bash
# Runs "$@" with the variables of the file named by GATEWAY_ENV_FILE (KEY=value lines) exported.
#
# PM2 starts the gateway and Prometheus through this, so PM2 only ever holds the file's name:
# `pm2 save` writes every app's environment into $PM2_HOME/dump.pm2, which is readable by
# anyone who can read that directory, and the secrets must not be in it. The file is read
# again at each (re)start, and refused when its mode lets the group or others read it.
set -euo pipefail

if [ -n "${GATEWAY_ENV_FILE:-}" ]; then
  file=$GATEWAY_ENV_FILE
  if [ ! -r "$file" ]; then
    echo "with-env-file.sh: GATEWAY_ENV_FILE=$file: cannot read it" >&2
    exit 1
  fi
  mode=$(stat -c %a "$file" 2>/dev/null || stat -f %Lp "$file")
  case $mode in
    *00) ;;
    *) echo "with-env-file.sh: GATEWAY_ENV_FILE=$file has mode $mode: others may read its secrets; chmod 600 it" >&2
       exit 1 ;;
  esac
  number=0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    case $line in
      '' | '#'*) continue ;;
      [A-Za-z_]*=*) export "${line?}" ;;
      # The line number, never the line: it may hold a secret.
      *) echo "with-env-file.sh: GATEWAY_ENV_FILE=$file, line $number: not a KEY=value line" >&2
         exit 1 ;;
    esac
  done < "$file"
fi
exec "$@"
