#!/usr/bin/env bash
# Download the models Doorways paints with, once, before the bot's first start.
#
#   deploy/download-models.sh                      the defaults: vqgan_imagenet_f16_16384 and ViT-B/32
#   deploy/download-models.sh vqgan_imagenet_f16_1024 ViT-B/16   other models (`doorways models list` names them)
#
# Run it as the user the bot runs as, so that the files belong to it:
#   systemd:  sudo -u doorways /opt/doorways/deploy/download-models.sh
#   Docker:   docker compose -f deploy/compose.yaml run --rm bot /opt/doorways/deploy/download-models.sh
# The files go to $DOORWAYS_MODELS, else the checkout's data/models/. A broken download resumes
# when run again; every file's sha256 is checked where it is known.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi

# The doorways command: $DOORWAYS if set, else the checkout's virtual environment, else PATH.
if [[ -n "${DOORWAYS:-}" ]]; then
    doorways="$DOORWAYS"
elif [[ -x "$repo/.venv/bin/doorways" ]]; then
    doorways="$repo/.venv/bin/doorways"
elif command -v doorways > /dev/null; then
    doorways="$(command -v doorways)"
else
    echo "download-models.sh: no doorways command: install the project first" \
        "(make setup, or python3 -m venv .venv && .venv/bin/pip install -e .)" >&2
    exit 2
fi

if [[ $# -eq 0 ]]; then
    set -- vqgan_imagenet_f16_16384 ViT-B/32
    size=" (about 1.3 GB)"
else
    size=""
fi

echo "Downloading $*${size} into ${DOORWAYS_MODELS:-$repo/data/models}."
status=0
"$doorways" models download "$@" || status=$?
if [[ $status -ne 0 ]]; then
    echo "download-models.sh: the download did not finish (exit status $status)." >&2
    echo "  Run this script again to resume it, or place the files yourself where" \
        "\`$doorways models path NAME\` says." >&2
    exit "$status"
fi
echo "Done. \`$doorways models list\` shows what is downloaded and where."
