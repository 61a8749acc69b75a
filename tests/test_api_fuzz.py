"""Schemathesis against our own OpenAPI schema, on the live test server, as a logged-in user: every
operation gets generated requests, valid and not, and no answer may be a 5xx or stray from what the
schema declares (status code, content type, body)."""

import subprocess
import sys
from pathlib import Path

import pytest

from gallery.services import image_create
from gallery.tokens import token_create
from tests import images
from tests.conftest import make_user, upload_file

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
REVOKE = "/api/auth/tokens/{key}/"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# The fast set: the checks above, each operation alone. The slow set: every check schemathesis has
# (invalid input must be refused, documented statuses only, ...), more examples, and its stateful
# phase, which chains operations through the links between them (upload, then fetch, tag, delete).
DEPTHS = {
    "fast": ["--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", "20"],
    "deep": ["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "60"],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("depth", [pytest.param("fast"), pytest.param("deep", marks=pytest.mark.slow)])
def test_the_api_never_errs_and_answers_as_its_schema_says(
    depth, live_server, colour_proposer, django_capture_on_commit_callbacks, tmp_path
):
    user = make_user("fuzzer")
    with django_capture_on_commit_callbacks(execute=True):  # a ready image, so id paths can hit something real
        image_create(owner=user, upload=upload_file(images.png(seed=1), "one.png"))
    token = token_create(user=user, name="fuzzing")[1]
    # Revoking tokens runs last and alone: schemathesis reuses the keys GET /api/auth/tokens/ lists,
    # and once it revokes the fuzzer's own token every later request would only meet a 401.
    for only in (["--exclude-path", REVOKE], ["--include-path", REVOKE]):
        result = subprocess.run(
            # "Connection: close", one connection a request: on a kept-alive connection Django's test
            # server now and then answered a fuzzed request with http.server's bare HTML error page and
            # no status line (bytes of an earlier request read as a new one; "Connection aborted.
            # <!DOCTYPE HTML>"), failing 2 runs of 3 here. Production is served by gunicorn, not it.
            [
                str(SCHEMATHESIS),
                "--config-file",
                str(CONFIG),
                "run",
                f"{live_server.url}/api/schema/",
                *only,
                "--header",
                f"Authorization: Token {token}",
                "--header",
                "Connection: close",
                *DEPTHS[depth],
                "--seed",
                "1",
                "--generation-with-security-parameters",
                "false",
                "--workers",
                "1",
                "--no-color",
                "--request-timeout",
                "30",
                "--suppress-health-check",
                "all",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-3000:]
