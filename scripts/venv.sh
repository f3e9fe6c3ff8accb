# Sourced by scripts/run and scripts/test: make .venv with a Python the workers can run.
#
# Run as root, the supervisor runs its workers as another user (nobody, or callfleet-bot),
# so the venv's Python must be one that user can run too: a Python installed under /root
# (0700), as pyenv does, is not. PYTHON=... picks one by hand.
runs_for_workers() {
    [ "$(id -u)" != 0 ] && return 0
    setpriv --reuid=65534 --regid=65534 --clear-groups "$1" -c 'import asyncio, sys; assert sys.version_info >= (3, 11)' \
        >/dev/null 2>&1
}
pick_python() {
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11 /usr/bin/python3 /usr/local/bin/python3; do
        if command -v "$candidate" >/dev/null 2>&1 && runs_for_workers "$(command -v "$candidate")"; then
            command -v "$candidate"
            return
        fi
    done
    echo "no Python >= 3.11 that the workers' user (nobody) can run: the supervisor will refuse to start as root" >&2
    command -v "${PYTHON:-python3}"
}
if [ ! -x .venv/bin/python ] || ! runs_for_workers .venv/bin/python; then
    rm -rf .venv
    "$(pick_python)" -m venv .venv
fi
