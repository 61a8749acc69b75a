"""The web server while PostgreSQL is away, served the production way (gunicorn, pooled connections)
against a PostgreSQL cluster of the test's own (tests/postgres_cluster.py).

While the database is down the API answers 503 at once, not after the pool's 10 s timeout with a
thread held all the while; /readyz answers in JSON within 2 s; and the API works again within 2 s of
the database coming back, not after psycopg's growing reconnection back-off (11-28 s; issue 27).
"""

import json
import time
import urllib.error
import urllib.request

import pytest

from gallery.tokens import token_create
from tests.conftest import make_user


def call(url: str, token: str | None = None, session: str | None = None) -> tuple[int, dict, float]:
    """The status, JSON body and seconds of one GET, with an API token or a signed-in session."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Token {token}")
    if session:
        request.add_header("Cookie", f"sessionid={session}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.monotonic() - started


@pytest.mark.slow
def test_the_api_fails_fast_while_postgresql_is_away_and_is_back_within_two_seconds(private_postgresql, serve, client):
    user = make_user("patient")
    token = token_create(user=user)[1]
    client.force_login(user)  # a session row in the same database the server uses
    session = client.cookies["sessionid"].value
    server = serve("make web")
    images = f"{server.url}/api/images/"
    assert call(images, token)[0] == 200, server.log()

    private_postgresql.stop()
    for _ in range(5):
        status, body, seconds = call(images, token)
        assert status == 503 and "database" in body["detail"], (status, body, server.log())
        assert seconds < 1.0, f"a 503 took {seconds:.1f} s"
    for who in (None, session):  # a signed-in monitor's session cannot be read either: still JSON
        status, body, seconds = call(f"{server.url}/readyz", session=who)
        assert status == 503 and body["checks"]["database"]["ok"] is False, body
        assert seconds < 2.0, f"/readyz took {seconds:.1f} s"

    private_postgresql.start()  # returns once PostgreSQL accepts connections
    back = time.monotonic()
    while (status := call(images, token)[0]) != 200 and time.monotonic() - back < 30:
        time.sleep(0.05)
    assert status == 200, server.log()
    assert time.monotonic() - back < 2.0, f"the API was back {time.monotonic() - back:.1f} s after PostgreSQL"


@pytest.mark.django_db
def test_a_busy_pool_still_waits_for_a_free_connection_rather_than_failing_fast():
    """Failing fast is for an unreachable database only: while every connection is busy a request
    waits its turn, and gets the connection returned within its timeout."""
    import threading

    from django.db import connection
    from psycopg_pool import PoolTimeout

    from imgsearch.postgresql.base import FailFastPool

    params = {**connection.get_connection_params(), "autocommit": True}
    with FailFastPool(kwargs=params, min_size=1, max_size=1, timeout=0.6) as pool:
        held = pool.getconn()
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            pool.getconn()
        assert 0.5 < time.monotonic() - started < 2.0 and not pool.unreachable
        threading.Timer(0.3, pool.putconn, [held]).start()
        started = time.monotonic()
        waited_for = pool.getconn()
        assert 0.25 < time.monotonic() - started < 0.6 and waited_for is held
        pool.putconn(waited_for)
