"""gunicorn's settings for `make run` (gunicorn -c imgsearch/gunicorn_conf.py imgsearch.wsgi).

Threads, not only processes: a search spends most of its time in torch and FAISS, which release the
GIL, so a few processes with several threads each keep 2 cores busy without a model copy per
request in flight. One CLIP for all the processes (WEB_SHARE_MODEL, default on): the master loads
the app and the model before it forks its workers, and they share its pages (copy on write: a
forward pass never writes the weights), so a second worker costs its activations, not a second
model (bench/web_memory.py). The README's configuration table lists these variables.
"""

from imgsearch.env import env_bool, env_int, env_str

bind = f"{env_str('HOST', '127.0.0.1')}:{env_int('PORT', 8000, minimum=1)}"
workers = env_int("WEB_WORKERS", 2, minimum=1)
threads = env_int("WEB_THREADS", 4, minimum=1)
worker_class = "gthread"
# Connections waiting for a free thread; the kernel caps it at net.core.somaxconn.
backlog = 2048
# An upload of many large photos may take a while to arrive and decode.
timeout = env_int("WEB_TIMEOUT", 120, minimum=10)
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Behind a proxy that sets X-Forwarded-For, log the client's address rather than the proxy's.
forwarded_allow_ips = env_str("FORWARDED_ALLOW_IPS", "127.0.0.1")
share_model = env_bool("WEB_SHARE_MODEL", True)
preload_app = share_model  # Django set up in the master, so that the model can be loaded there


def when_ready(server):
    """The master, listening, before it forks: load CLIP here (WEB_SHARE_MODEL) so that every worker,
    and every worker started later in its place, shares this one copy. Connections wait in the
    listen backlog meanwhile. Missing weights: logged; the workers answer searches with a 503 as
    they would without sharing. No database connection may cross the fork: any the app opened here
    is closed."""
    if not share_model:
        return
    import gc

    from django.db import connections

    from search.vision.registry import get_clip
    from search.vision.runtime import ModelUnavailable

    try:
        get_clip()
    except ModelUnavailable as error:
        server.log.warning("CLIP not loaded: %s", error)
    finally:
        connections.close_all()
    # The objects made so far live on in every worker untouched by the collector, whose passes would
    # otherwise write to their pages and so copy them into each worker.
    gc.freeze()


def post_worker_init(worker):
    """Each worker process, once booted:

    - leaves Ctrl-C to the master. The terminal's SIGINT reaches every process of the group; the
      master then sends its workers SIGQUIT, and a second quit signal arriving inside gunicorn's
      handler of the first could deadlock it (ThreadPoolExecutor.shutdown's lock): `make run` then
      took ~22 s to stop, its workers SIGKILLed. The master's SIGQUIT alone stops a worker at once.
    - without WEB_SHARE_MODEL, starts loading CLIP on a thread of its own: requests are answered
      meanwhile (/healthz at once, /readyz says "loading"), and the first searches wait for the
      model rather than each loading it. With it, the model is already here (when_ready).
    """
    import signal

    from search.vision.registry import preload_clip

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload_clip()
