# Headless Chromium for the browser tests (tests/browser): Debian's package, driven by
# Playwright with executable_path (Playwright's own browser download cannot be used).
if [ -z "${CONVEYOR_TEST_CHROMIUM:-}" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    say "Installing Chromium (Debian package) for the browser tests"
    as_root=""
    [ "$(id -u)" -ne 0 ] && as_root="sudo"
    if ! { $as_root apt-get update -q >/dev/null &&
      DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q chromium >/dev/null; }; then
      say "Could not install chromium: the browser tests will be skipped (and fail in CI)"
    fi
  fi
  if [ -x /usr/bin/chromium ]; then
    export CONVEYOR_TEST_CHROMIUM=/usr/bin/chromium
  fi
fi
