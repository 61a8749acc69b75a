"""imgsearch settings, read from the environment, one module per concern:

    core       where things live, apps, database, static and media files, mail, uploads, logging
    security   secret key, hosts, HTTPS, CSP, passwords and lockout, sign-up, API tokens, the API
    queue      the django-q2 broker and cluster, the image work queue's timing
    vision     the model profile, weights, how models run, CLIP, region proposers, SAM
    search     the vector index, thresholds and ranking, near-duplicates, tags, history

Every value has a default that runs from a bare checkout (SQLite, the django-q2 ORM broker, the
full-size models). `DATABASE_URL` switches to PostgreSQL and `REDIS_URL` to the Redis broker.
The README's configuration table lists every variable read here (tests/test_configuration_docs.py
holds it to that); why a default is what it is, when it took measuring, is in bench/README.md.
"""

from imgsearch.settings.core import *  # noqa: F403
from imgsearch.settings.queue import *  # noqa: F403
from imgsearch.settings.search import *  # noqa: F403
from imgsearch.settings.security import *  # noqa: F403
from imgsearch.settings.vision import *  # noqa: F403
