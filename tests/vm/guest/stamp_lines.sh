#!/usr/bin/env bash
# Copy stdin to stdout, each line prefixed with the seconds since this filter started.
while IFS= read -r line; do printf '[+%ss] %s\n' "$SECONDS" "$line"; done
