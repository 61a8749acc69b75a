"""`python -m imgsearch.wait_until_serving URL PID`: return once URL answers 200 (exit 0), or as soon as
process PID has exited (exit 1). `make run` prints its "imgsearch on http://..." line with it, when
the app answers requests rather than when gunicorn starts booting."""

import os
import sys
import time
import urllib.request


def main(url: str, pid: int) -> int:
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 1
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return 0
        except OSError:  # not listening yet, or not answering yet
            pass
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
