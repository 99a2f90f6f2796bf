#!/usr/bin/env python3
"""Container health check: exit 0 when the URL answers 2xx, 1 otherwise.

Usage: healthcheck [URL]   (URL defaults to $HEALTHCHECK_URL; with neither, exit 0:
a container with nothing to probe is healthy while its process runs).
Standard library only, so it starts fast and works in every container of the image.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Probe the URL once with a short timeout and report the outcome as the exit code."""
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HEALTHCHECK_URL", "")
    if not url:
        return 0
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
