#!/bin/sh
# Every remedy against forgetting on the built-in pair is now one command,
# mneme study (see mneme(1)); this wrapper stays for old notes and scripts.
# usage: compare.sh [OUT_DIR]   (the binary: $MNEME, else mneme on PATH, else ./mneme)
mneme=${MNEME:-$(command -v mneme || echo ./mneme)}
exec "$mneme" study "$(cd "$(dirname "$0")" && pwd)/../full-ft-aggressive.cfg" --headless --quiet ${1:+--out "$1"}
